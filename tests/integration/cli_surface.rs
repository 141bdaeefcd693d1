//! The command line at first use (issue 11): man pages, `--help`, completions, exit codes of
//! usage errors, colours and a closed pipe.
