//! One racer of tests/fleet_store.rs: opens the shared store, waits for the common start
//! instant, then tries to consume TOTP step `STEP` for `UID` in one update and prints
//! `won` (it wrote the new mark) or `lost` (the mark was already there).
//!
//! Usage: fleet-race PLUGIN URL PREFIX UID STEP START_UNIX_MS

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use totp_core::fleet::{ConnectionOptions, RedisOptions};
use totp_core::state::{EnrolmentId, Marks, StateStore, UserState, Write};

const ENROLMENT: EnrolmentId = EnrolmentId(1);
use totp_os::remote::{RemoteSettings, RemoteStore, plugin_config};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, plugin, url, prefix, uid, step, start] = args.as_slice() else {
        eprintln!("usage: fleet-race PLUGIN URL PREFIX UID STEP START_UNIX_MS");
        return ExitCode::from(2);
    };
    let (Ok(uid), Ok(step), Ok(start)) = (uid.parse(), step.parse::<u64>(), start.parse::<u128>())
    else {
        eprintln!("fleet-race: bad number");
        return ExitCode::from(2);
    };
    let endpoint = match totp_core::fleet::RedisEndpoint::parse(url) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fleet-race: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RedisOptions {
        endpoint,
        conn: ConnectionOptions {
            connect_timeout_ms: 2000,
            command_timeout_ms: 2000,
            prefix: prefix.clone(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            plugin: None,
        },
        wait_replicas: 0,
        wait_timeout_ms: 0,
        ttl_secs: 600,
    };
    let result = plugin_config(&opts).and_then(|c| {
        RemoteStore::open(
            Path::new(plugin),
            &c,
            RemoteSettings::for_options(&opts, false),
        )
    });
    let mut store = match result {
        Ok(s) => s,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(1);
        }
    };
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        if now >= start {
            break;
        }
        std::thread::sleep(Duration::from_millis(((start - now) as u64).min(5)));
    }
    let mut won = false;
    let r = store.update(uid, &mut |cur: &UserState| {
        won = false;
        let marks = cur.marks_of(ENROLMENT).cloned().unwrap_or_default();
        if marks.totp_until.is_some_and(|s| s >= step) {
            return Write::Nothing;
        }
        won = true;
        Write::Durable(cur.with_marks(
            ENROLMENT,
            Marks {
                totp_until: Some(step),
                ..marks
            },
        ))
    });
    match r {
        Ok(()) => {
            println!("{}", if won { "won" } else { "lost" });
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(1)
        }
    }
}
