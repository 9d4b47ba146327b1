//! Test harness: starts Magnetar servers on loopback port 0 with temporary directories and
//! waits on conditions with deadlines.
