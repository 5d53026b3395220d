//! Real `holdfast` processes (the built binary): graceful shutdown on SIGTERM, request ids and
//! no secrets in the logs, several replicas on one database, replay, and the Dockerfile's
//! runtime contract.

mod dockerfile;
mod replay;
mod replicas;
mod shutdown;
