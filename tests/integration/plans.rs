//! Plans (issue 11): name clashes across projects, example fingerprint keys, the environment
//! of a saved plan and what made it stale.
