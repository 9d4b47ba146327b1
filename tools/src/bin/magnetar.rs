//! `magnetar`: runs Magnetar servers.

fn main() {
    eprintln!("magnetar: no servers yet");
    std::process::exit(2);
}
