//! What the tests share: the server under test and its clients (`helpers`), a real SMTP
//! server (`smtp_sink`) and the mail tests' arrangement (`mail_world`), the real binary as a
//! child process with a database-cutting proxy (`process`), and the rules for tests that
//! need a browser or one database (`requires`). Test modules import from here, never from
//! each other.

pub mod helpers;
pub mod mail_world;
pub mod process;
pub mod requires;
pub mod smtp_sink;
