//! Plain data shared by every layer: names, the desired and observed states with the labels
//! that tie them together, and text made safe to display. No I/O here.

pub mod names;
pub mod state;
pub mod text;
