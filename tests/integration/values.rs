//! Values and the repository's bookkeeping (issue 11): trailing newlines on `set`, binary
//! values on a terminal and in `textconv`, pruning the index, `rm` of several names.
