//! What the tests share: the server under test and its clients (`helpers`), a real SMTP
//! server (`smtp_sink`) and the mail tests' arrangement (`mail_world`), the real binary as a
//! child process with a database-cutting proxy (`process`) or as `holdfast serve` children
//! logging JSON (`serve_child`), and the rules for tests that need a browser or one database
//! (`requires`), the cancel flow's arrangement (`cancel_flow`), the lifecycle email tests'
//! events and readings (`lifecycle`) and the metrics tests' simulated business (`business`).
//! Test modules import from here, never from each other.

pub mod business;
pub mod cancel_flow;
pub mod helpers;
pub mod lifecycle;
pub mod mail_world;
pub mod process;
pub mod requires;
pub mod serve_child;
pub mod smtp_sink;
