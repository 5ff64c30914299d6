//! DSPy's core ideas in Rust: signatures, the ChatAdapter (with JSON fallback), language
//! models, `Predict`, `ChainOfThought` and `ReAct` over Warden's secure tools, plus
//! the optimizers and `Evaluate` (`teleprompt`). A DSPy user should recognise every piece; the prompts are byte-identical.
//!
//! May import: `types`, `paths`, `security`, `auth`, `config`, `mcp`. Enforced by
//! `tests/layering.rs`.

pub mod adapter;
pub mod lm;
pub mod predict;
pub mod program;
pub mod program_file;
pub mod pyfmt;
pub mod react;
pub mod signature;
pub mod teleprompt;
pub mod tool;
