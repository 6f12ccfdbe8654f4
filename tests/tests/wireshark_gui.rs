//! The Wireshark GUI itself, under Xvfb: after `pcap extcap install --system`,
//! `wireshark -i pcapd-ALIAS -k -a packets:N -w OUT` opens a capture of the test daemon,
//! its main window says it captures from that interface, OUT ends up with the N packets
//! that were sent, and the packet list shows them. A screenshot of the display is taken;
//! with `PCAPD_SCREENSHOT=PATH` it is kept there (docs/wireshark-pcapd.png came from this).
//!
//! Needs root (to capture and to install the launcher in Wireshark's global extcap folder)
//! and wireshark-qt, xvfb, x11-apps (xwd), x11-utils (xwininfo) and netpbm, which
//! scripts/test.sh installs.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcapd_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Packets Wireshark captures before it stops (`-a packets:N`): a few HTTP exchanges of
/// about ten packets each, which fit in the packet list of a 1280x800 window.
const N: usize = 24;

/// The programs this test runs besides pcapd's, and the Debian package of each.
const TOOLS: [(&str, &str); 7] = [
    ("wireshark", "wireshark-qt"),
    ("Xvfb", "xvfb"),
    ("xwd", "x11-apps"),
    ("xwininfo", "x11-utils"),
    ("xwdtopnm", "netpbm"),
    ("pnmtopng", "netpbm"),
    ("capinfos", "wireshark-common"),
];

/// The packet list's columns: Wireshark's default ones and the description of the
/// interface each packet came from, which pcapd writes as "ALIAS: capture ID on IFACE".
const COLUMNS: &str = "gui.column.format:\
    \"No.\",\"%m\",\"Time\",\"%t\",\"Interface\",\"%Cus:frame.interface_description:0:R\",\
    \"Source\",\"%s\",\"Destination\",\"%d\",\"Protocol\",\"%p\",\"Length\",\"%L\",\"Info\",\"%i\"";

/// Their widths in pixels, as Wireshark keeps them in its `recent` file: it sizes a custom
/// column by its title otherwise.
const COLUMN_WIDTHS: &str =
    "column.width: %m, 50, %t, 100, \"%Cus:frame.interface_description\", 170, \
    %s, 90, %d, 90, %p, 70, %L, 60, %i, 540\n";

/// Default colouring rules of Wireshark 4.0 (/usr/share/wireshark/colorfilters): the
/// background of a row of HTTP.
const HTTP_ROW: [u8; 3] = [0xe4, 0xff, 0xc7];

/// Whether `program` is in PATH.
fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ends `child` by its pid, or with `group` the process group it leads (what it started
/// goes too): SIGTERM, up to `grace` to exit, then SIGKILL.
fn end(child: &mut Child, group: bool, grace: Duration) {
    let pid = child.id() as i32;
    let target = Pid::from_raw(if group { -pid } else { pid });
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut exited = false;
    while !exited && Instant::now() < deadline {
        exited = child.try_wait().ok().flatten().is_some();
        if !exited {
            thread::sleep(Duration::from_millis(20));
        }
    }
    // The group may outlive its leader (dumpcap, the extcap); a reaped pid is not signalled.
    if group || !exited {
        let _ = kill(target, Signal::SIGKILL);
    }
    let _ = child.wait();
}

/// An X server of its own, on a display number it picked as free (`-displayfd`); ended by
/// its pid when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start(log: &Path) -> Xvfb {
        // Xvfb writes the display number it took into this pipe once it accepts clients.
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        fcntl(&write, FcntlArg::F_SETFD(FdFlag::empty())).expect("let Xvfb inherit the pipe");
        let child = Command::new("Xvfb")
            .args(["-displayfd", &write.as_raw_fd().to_string()])
            .args(["-nolisten", "tcp", "-screen", "0", "1280x800x24"])
            .stdin(Stdio::null())
            .stdout(File::create(log).expect("Xvfb log"))
            .stderr(File::create(log.with_extension("err")).expect("Xvfb log"))
            .spawn()
            .expect("run Xvfb");
        drop(write);
        let mut xvfb = Xvfb {
            child,
            display: String::new(),
        };
        // The number ends with a newline; EOF first means Xvfb exited. A thread reads it so
        // that the wait is bounded.
        let reader = thread::spawn(move || {
            let (mut file, mut number, mut byte) = (File::from(read), Vec::new(), [0u8]);
            while file.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
                number.push(byte[0]);
            }
            String::from_utf8_lossy(&number).into_owned()
        });
        let deadline = Instant::now() + LIMIT;
        while !reader.is_finished() {
            assert!(
                Instant::now() < deadline,
                "Xvfb did not report its display within {LIMIT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let number = reader.join().unwrap();
        if number.trim().is_empty() {
            let status = xvfb.child.wait().expect("wait for Xvfb");
            let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
            panic!("Xvfb ended before taking a display ({status}):\n{err}");
        }
        xvfb.display = format!(":{}", number.trim());
        xvfb
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        end(&mut self.child, false, Duration::from_secs(5));
    }
}

/// Wireshark running in a process group of its own (with dumpcap and the extcap it starts),
/// ended by that group's id when dropped, whatever happened.
struct Wireshark {
    child: Child,
    log: PathBuf,
}

impl Wireshark {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with Wireshark's log if it is no longer running.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("wireshark ended ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Wireshark {
    fn drop(&mut self) {
        end(&mut self.child, true, Duration::from_secs(10));
    }
}

/// The launcher installed for this test, removed at the end whatever happens.
struct Installed<'a> {
    client: &'a Pcap,
    name: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let out = self
            .client
            .run(&["extcap", "uninstall", "--system", "--name", &self.name]);
        if !out.status.success() {
            eprintln!("pcap extcap uninstall {}: {}", self.name, out.stderr);
        }
    }
}

/// Titles of Wireshark's top-level windows on `display` (class "wireshark"), from xwininfo.
fn wireshark_titles(display: &str) -> Vec<String> {
    let mut cmd = Command::new("xwininfo");
    cmd.args(["-root", "-tree", "-display", display]);
    let out = run_bounded(&mut cmd, "xwininfo -root -tree", LIMIT);
    assert!(out.status.success(), "xwininfo: {}", out.stderr);
    // `     0x200006 "Capturing from ...": ("wireshark" "Wireshark")  1280x800+0+0  +0+0`
    out.stdout_str()
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once('"')?;
            let (title, class) = rest.split_once("\": (")?;
            class.starts_with("\"wireshark\"").then(|| title.to_owned())
        })
        .collect()
}

/// One HTTP/1.1 exchange on loopback: a GET of `path` answered by a one-shot server on
/// `listener`; returns the response.
fn http_get(listener: &TcpListener, path: &str) -> String {
    let server = {
        let listener = listener.try_clone().expect("clone the listener");
        thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = "hello from pcapd's test\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes())
                .expect("write the response");
        })
    };
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client
        .set_read_timeout(Some(LIMIT))
        .expect("set a read timeout");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: pcapd-test\r\n\
         Connection: close\r\n\r\n"
    );
    client
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    client
        .read_to_string(&mut response)
        .expect("read the response");
    server.join().expect("HTTP server thread");
    response
}

/// A screenshot of the whole display as a binary PPM (xwd, then xwdtopnm), in `dir`.
fn screenshot(display: &str, dir: &Path) -> Ppm {
    let xwd = dir.join("screen.xwd");
    let mut cmd = Command::new("xwd");
    cmd.args(["-root", "-silent", "-display", display, "-out"])
        .arg(&xwd);
    let out = run_bounded(&mut cmd, "xwd -root", LIMIT);
    assert!(out.status.success(), "xwd -root: {}", out.stderr);
    let mut cmd = Command::new("xwdtopnm");
    cmd.arg(&xwd);
    let out = run_bounded(&mut cmd, "xwdtopnm", LIMIT);
    assert!(out.status.success(), "xwdtopnm: {}", out.stderr);
    Ppm::parse(out.stdout)
}

/// A binary PPM (P6, maxval 255): its size and pixels.
struct Ppm {
    bytes: Vec<u8>,
    width: usize,
    height: usize,
    data_at: usize,
}

impl Ppm {
    fn parse(bytes: Vec<u8>) -> Ppm {
        // The header is four whitespace-separated fields, then one whitespace byte.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
                at += 1;
            }
            let start = at;
            while bytes.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
                at += 1;
            }
            assert!(at > start, "xwdtopnm wrote no PPM header");
            fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
        }
        assert_eq!(
            (fields[0].as_str(), fields[3].as_str()),
            ("P6", "255"),
            "xwdtopnm wrote no 8-bit PPM"
        );
        let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let data_at = at + 1;
        assert_eq!(
            bytes.len(),
            data_at + width * height * 3,
            "xwdtopnm cut the image short"
        );
        Ppm {
            bytes,
            width,
            height,
            data_at,
        }
    }

    fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        self.bytes[self.data_at..]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
    }

    fn count(&self, colour: [u8; 3]) -> usize {
        self.pixels().filter(|p| *p == colour).count()
    }

    fn colours(&self) -> usize {
        self.pixels().collect::<HashSet<_>>().len()
    }
}

#[test]
fn the_wireshark_gui_captures_from_a_pcapd_interface() {
    if !require_root() {
        return;
    }
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(program, _)| !installed(program))
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("PCAPD_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "this test needs {}: run scripts/test.sh, which installs them",
            missing.join(", ")
        );
        println!("skipping: not installed: {}", missing.join(", "));
        return;
    }
    // The screenshot for the README shows a capture aliased `web`; otherwise the alias is
    // one no other run on this machine uses, since the launcher is seen by every Wireshark.
    let keep = std::env::var_os("PCAPD_SCREENSHOT").map(PathBuf::from);
    let alias = if keep.is_some() {
        "web".to_owned()
    } else {
        format!("web{}", std::process::id())
    };
    let value = format!("pcapd-{alias}");

    let d = Daemon::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let port = listener.local_addr().unwrap().port();
    d.init_started(&["lo", &format!("tcp port {port}"), "--alias", &alias]);
    let name = format!("pcapd-test-{}", std::process::id());
    d.ok(&["extcap", "install", "--system", "--name", &name]);
    let _installed = Installed {
        client: d.client(),
        name,
    };

    let dir = tempfile::tempdir().unwrap();
    let xvfb = Xvfb::start(&dir.path().join("xvfb.log"));

    // A home of its own: no preferences or recent files of whoever runs the tests, and a
    // main window that fills the screen (there is no window manager to size it).
    let home = dir.path().join("home");
    let config = home.join(".config");
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(config.join("wireshark")).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        config.join("wireshark/recent_common"),
        "gui.geometry_main_x: 0\ngui.geometry_main_y: 0\n\
         gui.geometry_main_width: 1280\ngui.geometry_main_height: 800\n\
         gui.geometry_main_maximized: FALSE\n",
    )
    .unwrap();
    std::fs::write(config.join("wireshark/recent"), COLUMN_WIDTHS).unwrap();

    let out = dir.path().join("out.pcapng");
    let log = dir.path().join("wireshark.log");
    let log_file = File::create(&log).unwrap();
    // Root is fine for Wireshark here: it says running as root may be dangerous, in its log.
    // No session bus: Qt does without. `-d` has the HTTP dissector read the test's port; the
    // columns are Wireshark's usual ones with the interface each packet came from added.
    let child = Command::new("wireshark")
        .args(["-n", "-i", &value, "-k", "-a", &format!("packets:{N}")])
        .args(["-d", &format!("tcp.port=={port},http"), "-o", COLUMNS])
        // The list stays at its first packets rather than following the capture.
        .args(["-o", "capture.auto_scroll:FALSE", "-w"])
        .arg(&out)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &config)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("DISPLAY", &xvfb.display)
        .env("QT_QPA_PLATFORM", "xcb")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .expect("run wireshark");
    let mut ws = Wireshark { child, log };

    // The main window names the interface it captures from, by its display name
    // ("pcapd: ALIAS (lo, FILTER)") or its name.
    let capturing = |t: &str| {
        t.starts_with("Capturing from")
            && (t.contains(&value) || t.contains(&format!(": {alias} ")))
    };
    let mut title = None;
    eventually_ok(LIMIT, "Wireshark's main window capturing", || {
        ws.assert_running();
        let titles = wireshark_titles(&xvfb.display);
        title = titles.iter().find(|t| capturing(t)).cloned();
        title
            .as_ref()
            .map(|_| ())
            .ok_or_else(|| format!("windows {titles:?}"))
    });
    println!("main window: {:?}", title.unwrap());
    // dumpcap writes OUT once the extcap's stream is open, and pcapd sends packets that
    // come from then on: before, the requests would not be in the capture.
    eventually(LIMIT, "dumpcap writing the capture file", || {
        ws.assert_running();
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    });

    // Requests until Wireshark stops at N packets, which its title says: it then shows the
    // file it wrote instead of the interface.
    let deadline = Instant::now() + LIMIT;
    let mut sent = Vec::new();
    let titles = loop {
        ws.assert_running();
        let titles = wireshark_titles(&xvfb.display);
        if !titles.iter().any(|t| capturing(t)) {
            break titles;
        }
        assert!(
            Instant::now() < deadline,
            "Wireshark did not stop after {N} packets within {LIMIT:?}; {} requests sent; \
             windows {titles:?}; log:\n{}",
            sent.len(),
            ws.log()
        );
        let path = format!("/pcapd/{}.txt", sent.len() + 1);
        let response = http_get(&listener, &path);
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        sent.push(path);
    };
    assert!(
        titles.iter().any(|t| t == "out.pcapng"),
        "after the capture the main window shows out.pcapng: {titles:?}"
    );

    // What Wireshark wrote: N packets of the test's HTTP exchanges, from the pcapd interface.
    assert_eq!(capinfos_packets(&out), N as u64);
    let d_arg = format!("tcp.port=={port},http");
    let fields = tshark_file(
        &out,
        &[
            "-d",
            &d_arg,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.interface_description",
            "-e",
            "tcp.port",
            "-e",
            "http.request.uri",
        ],
    );
    assert_eq!(fields.len(), N, "{fields:?}");
    let mut uris = Vec::new();
    for line in &fields {
        let f: Vec<&str> = line.split('|').collect();
        assert!(
            f[0] == value || f[0] == "lo",
            "interface {} in {line}",
            f[0]
        );
        assert!(
            f[1].starts_with(&format!("{alias}: ")),
            "the interface's description names the capture: {line}"
        );
        assert!(
            f[2].split(',').any(|p| p == port.to_string()),
            "a packet of another connection: {line}"
        );
        if !f[3].is_empty() {
            uris.push(f[3].to_owned());
        }
    }
    assert!(
        !uris.is_empty(),
        "no HTTP request among the packets: {fields:?}"
    );
    assert_eq!(uris, sent[..uris.len()], "the requests in the order sent");

    // The packet list is painted after the title changes, with nothing else to watch: so
    // the display itself is polled until HTTP rows are on it and two screenshots in a row
    // are the same.
    let mut last: Option<Ppm> = None;
    let mut shot = None;
    eventually_ok(LIMIT, "the packet list drawn", || {
        ws.assert_running();
        let now = screenshot(&xvfb.display, dir.path());
        let rows = now.count(HTTP_ROW);
        let same = last.as_ref().is_some_and(|l| l.bytes == now.bytes);
        last = Some(now);
        if rows >= 1000 && same {
            shot = last.take();
            Ok(())
        } else {
            Err(format!(
                "{rows} pixels of HTTP rows; same as before: {same}"
            ))
        }
    });
    let shot = shot.unwrap();
    assert_eq!((shot.width, shot.height), (1280, 800));
    let colours = shot.colours();
    assert!(colours > 16, "the screenshot has {colours} colours");

    let ppm = dir.path().join("screen.ppm");
    std::fs::write(&ppm, &shot.bytes).unwrap();
    let png = dir.path().join("screen.png");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("pnmtopng \"$0\" > \"$1\"")
        .arg(&ppm)
        .arg(&png);
    let done = run_bounded(&mut cmd, "pnmtopng", LIMIT);
    assert!(done.status.success(), "pnmtopng: {}", done.stderr);
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(
        (10_000..300_000).contains(&size),
        "a PNG of {size} bytes for a 1280x800 screen of Wireshark"
    );
    if let Some(keep) = keep {
        std::fs::copy(&png, &keep)
            .unwrap_or_else(|e| panic!("copy the screenshot to {}: {e}", keep.display()));
        println!("screenshot in {} ({size} bytes)", keep.display());
    }
}
