//! Reports and saved plans (issue 11): durations, name clashes across projects, the
//! environment of a saved plan and what made it stale, wording, JSON and markdown consistency.
