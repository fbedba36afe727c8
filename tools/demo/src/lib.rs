//! What the demo (`demo`) and the standby pool's benchmark (`pool-bench`) share: the
//! services as processes against this machine's NATS and MariaDB (module `world`),
//! and the programs they start (module `programs`).

pub mod programs;
pub mod world;
