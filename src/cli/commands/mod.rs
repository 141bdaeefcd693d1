//! One thin file per subcommand: each resolves what it needs through the
//! [`Context`](crate::cli::context::Context), calls the library, and renders the result.
//! No command imports another; what two commands share lives in the library or in
//! [`crate::cli::context`].

pub mod apply;
pub mod check;
pub mod completions;
pub mod edit;
pub mod exec;
pub mod get;
pub mod import;
pub mod init;
pub mod keygen;
pub mod ls;
pub mod man;
pub mod plan;
pub mod recipients;
pub mod rekey;
pub mod rm;
pub mod rotate;
pub mod set;
pub mod status;
pub mod textconv;
pub mod unlock;
