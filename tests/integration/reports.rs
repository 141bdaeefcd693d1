//! Reports (issue 11): durations, wording, JSON and markdown consistency, hints.
