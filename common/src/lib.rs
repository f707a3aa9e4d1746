//! What berth-csi, berth-ingress and the test harness share: the processes of this host as
//! `/proc` shows them ([`procs`]) and the logging setup of the two binaries ([`logging`]).

pub mod logging;
pub mod procs;
