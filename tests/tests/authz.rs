//! Who may do what: the caller who creates a capture owns it; only its owner or an admin
//! (uid 0, members of `admin_group`, certificates named in `admin_clients`) may start, stop
//! or delete it; anyone who reaches the API may list, replay and listen. Checked with real
//! Unix users in the socket's group and with client certificates over mutual TLS.

use pcapd_e2e::*;

/// Runs `pcap ARGS` through `p`, asserts it was refused as pcapd refuses a caller who may
/// not act (exit 1, a message naming one of `capture` (id or alias), the `owner`, and who
/// may act: admins); returns the message.
fn assert_refused(p: &Pcap, args: &[&str], capture: &[&str], owner: &str) -> String {
    let out = p.run(args);
    let what = format!("pcap {}", args.join(" "));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} by someone who is neither the owner nor an admin should be refused with exit \
         code 1; it ended with {}; stdout:\n{}stderr:\n{}",
        out.status,
        out.stdout_str(),
        out.stderr
    );
    let err = out.stderr;
    assert!(
        capture.iter().any(|c| has_word(&err, c)),
        "{what}: the refusal should name the capture ({capture:?}): {err}"
    );
    assert!(
        err.contains(owner),
        "{what}: the refusal should name the owner ({owner}): {err}"
    );
    assert!(
        err.to_lowercase().contains("admin"),
        "{what}: the refusal should say who may act (its owner or an admin): {err}"
    );
    err
}

/// `pcap init ARGS` through `p`; the new (or existing) capture's id.
fn init_as(p: &Pcap, args: &[&str]) -> u64 {
    let mut full = vec!["init"];
    full.extend_from_slice(args);
    let out = p.ok(&full);
    out.lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pcap init should print the id first, printed {out:?}"))
}

/// The owner `list --json` shows for capture `id`.
fn owner(d: &Daemon, id: u64) -> String {
    let c = d.capture(id);
    c["owner"]
        .as_str()
        .unwrap_or_else(|| panic!("no owner in {c}"))
        .to_owned()
}

#[test]
fn only_the_owner_may_start_stop_and_delete_but_anyone_may_read() {
    const PORT: u16 = 25101;
    const OTHER_PORT: u16 = 25102;
    if !require_root() {
        return;
    }
    let sock = UnixGroup::create("sock");
    let alice = UnixUser::create("a", &[&sock]);
    let bob = UnixUser::create("b", &[&sock]);
    let d = Daemon::builder().socket_group(sock.name()).start();
    let as_alice = alice.pcap(d.client());
    let as_bob = bob.pcap(d.client());
    let filter = format!("udp port {PORT}");

    let id = init_as(&as_alice, &["lo", &filter, "--alias", "web"]);
    assert_eq!(
        owner(&d, id),
        alice.caller(),
        "the creator owns the capture"
    );
    as_alice.ok(&["start", "web"]);
    d.wait_state(id, "ACTIVE");
    send_udp(PORT, 50, 64);
    d.wait_spooled(id, 50);

    // Another member of the group may not act on it, by alias or by id...
    let ids = id.to_string();
    let names = ["web", ids.as_str()];
    let err = assert_refused(&as_bob, &["stop", "web"], &names, &alice.caller());
    println!("refusal: {err}");
    assert_refused(&as_bob, &["stop", &ids], &names, &alice.caller());
    assert_eq!(d.state(id), "ACTIVE", "a refused stop stops nothing");
    assert_refused(&as_bob, &["delete", "web"], &names, &alice.caller());
    assert!(
        d.try_capture(id).is_some(),
        "a refused delete deletes nothing"
    );
    assert!(d.spool_dir(id).is_dir(), "a refused delete keeps the spool");

    // ... but may read it.
    let listed: serde_json::Value = serde_json::from_str(&as_bob.ok(&["--json", "list"]))
        .expect("pcap --json list prints JSON");
    let mine = listed
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"].as_u64() == Some(id)))
        .unwrap_or_else(|| panic!("bob's list does not show capture {id}: {listed}"));
    assert_eq!(mine["owner"], alice.caller().as_str(), "{mine}");
    let table = as_bob.ok(&["list"]);
    assert!(
        table.contains(alice.name()),
        "the table shows the owner: {table}"
    );
    let replay = as_bob.ok_bytes(&["replay", "web"]);
    assert_eq!(
        PcapFile::from_bytes(&replay.stdout).seqs_to(PORT),
        (0..50).collect::<Vec<_>>(),
        "anyone in the group may replay"
    );

    // The same target and filter from bob adds his alias and leaves the owner as it was;
    // the alias gives him no right to act.
    let same = init_as(&as_bob, &["lo", &filter, "--alias", "bobweb"]);
    assert_eq!(same, id, "no second capture for the same target and filter");
    assert_eq!(
        owner(&d, id),
        alice.caller(),
        "init by another keeps the owner"
    );
    assert_refused(
        &as_bob,
        &["stop", "bobweb"],
        &["bobweb", "web", ids.as_str()],
        &alice.caller(),
    );

    // The owner may.
    as_alice.ok(&["stop", "web"]);
    assert_eq!(d.state(id), "PAUSED");
    assert_refused(&as_bob, &["start", "web"], &names, &alice.caller());
    assert_eq!(d.state(id), "PAUSED", "a refused start starts nothing");

    // So may root.
    d.ok(&["start", "web"]);
    assert_eq!(d.state(id), "ACTIVE");
    d.ok(&["stop", "web"]);
    assert_eq!(d.state(id), "PAUSED");

    // Bob owns what he creates.
    let his = init_as(&as_bob, &["lo", &format!("udp port {OTHER_PORT}")]);
    assert_eq!(owner(&d, his), bob.caller());
    as_bob.ok(&["start", &his.to_string()]);
    assert_eq!(d.state(his), "ACTIVE");
    assert_refused(
        &as_alice,
        &["stop", &his.to_string()],
        &[&his.to_string()],
        &bob.caller(),
    );
    as_bob.ok(&["stop", &his.to_string()]);
    as_bob.ok(&["delete", &his.to_string()]);
    assert!(d.try_capture(his).is_none());

    as_alice.ok(&["delete", "web"]);
    assert!(d.try_capture(id).is_none(), "the owner may delete");
    assert!(d.log().matches("panicked").count() == 0, "{}", d.log());
}

#[test]
fn all_by_someone_who_owns_only_some_of_the_captures_is_refused_whole() {
    const PORTS: [u16; 3] = [25103, 25104, 25105];
    if !require_root() {
        return;
    }
    let sock = UnixGroup::create("sock");
    let alice = UnixUser::create("a", &[&sock]);
    let bob = UnixUser::create("b", &[&sock]);
    let d = Daemon::builder().socket_group(sock.name()).start();
    let as_alice = alice.pcap(d.client());
    let as_bob = bob.pcap(d.client());

    let a1 = init_as(&as_alice, &["lo", &format!("udp port {}", PORTS[0])]);
    let a2 = init_as(
        &as_alice,
        &["lo", &format!("udp port {}", PORTS[1]), "--alias", "a2"],
    );
    let b1 = init_as(&as_bob, &["lo", &format!("udp port {}", PORTS[2])]);
    for (p, id) in [(&as_alice, a1), (&as_alice, a2), (&as_bob, b1)] {
        p.ok(&["start", &id.to_string()]);
    }
    let all = [a1, a2, b1];
    for id in all {
        assert_eq!(d.state(id), "ACTIVE");
    }

    let a1s = a1.to_string();
    let a2s = a2.to_string();
    let err = assert_refused(
        &as_bob,
        &["stop", "--all"],
        &[a1s.as_str(), a2s.as_str(), "a2"],
        &alice.caller(),
    );
    println!("refusal: {err}");
    for id in all {
        assert_eq!(
            d.state(id),
            "ACTIVE",
            "a refused --all does nothing, not even to bob's own capture {b1}"
        );
    }
    assert_refused(
        &as_bob,
        &["delete", "--all"],
        &[a1s.as_str(), a2s.as_str(), "a2"],
        &alice.caller(),
    );
    assert_eq!(d.list().len(), 3, "a refused delete --all deletes nothing");

    // Root may do it all at once.
    d.ok(&["stop", "--all"]);
    for id in all {
        assert_eq!(d.state(id), "PAUSED");
    }
}

#[test]
fn members_of_the_admin_group_may_act_on_any_capture() {
    const PORT: u16 = 25106;
    if !require_root() {
        return;
    }
    let sock = UnixGroup::create("sock");
    let admins = UnixGroup::create("adm");
    let alice = UnixUser::create("a", &[&sock]);
    let bob = UnixUser::create("b", &[&sock]);
    let carol = UnixUser::create("c", &[&sock, &admins]);
    let d = Daemon::builder()
        .socket_group(sock.name())
        .config(&format!("admin_group = {:?}\n", admins.name()))
        .start();
    let as_alice = alice.pcap(d.client());
    let as_bob = bob.pcap(d.client());
    let as_carol = carol.pcap(d.client());

    let id = init_as(
        &as_alice,
        &["lo", &format!("udp port {PORT}"), "--alias", "web"],
    );
    as_alice.ok(&["start", "web"]);
    let err = assert_refused(
        &as_bob,
        &["stop", "web"],
        &["web", &id.to_string()],
        &alice.caller(),
    );
    assert!(
        err.contains(admins.name()),
        "the refusal names the admin group: {err}"
    );

    as_carol.ok(&["stop", "web"]);
    assert_eq!(d.state(id), "PAUSED", "an admin may stop it");
    as_carol.ok(&["start", "web"]);
    assert_eq!(d.state(id), "ACTIVE", "an admin may start it");
    assert_eq!(
        owner(&d, id),
        alice.caller(),
        "an admin acting does not take the capture over"
    );
    as_carol.ok(&["delete", "web"]);
    assert!(d.try_capture(id).is_none(), "an admin may delete it");
}

#[test]
fn the_certificate_that_created_a_capture_owns_it() {
    const PORT: u16 = 25107;
    if !require_root() {
        return;
    }
    let certs = Certs::make_for(&["localhost"], &["alice", "bob"]);
    let port = free_port();
    let d = certs.daemon(port);
    let url = format!("https://localhost:{port}");
    certs.add_client_remote(&d, "asalice", &url, "alice");
    certs.add_client_remote(&d, "asbob", &url, "bob");

    let out = d.ok(&[
        "init",
        "asalice:lo",
        &format!("udp port {PORT}"),
        "--alias",
        "web",
    ]);
    let id: u64 = out.lines().next().unwrap_or("").trim().parse().unwrap();
    assert_eq!(owner(&d, id), "cert alice");
    d.ok(&["start", "asalice:web"]);
    assert_eq!(d.state(id), "ACTIVE");
    send_udp(PORT, 20, 64);
    d.wait_spooled(id, 20);

    let names = ["web", &id.to_string()];
    let p = d.client();
    assert_refused(p, &["stop", "asbob:web"], &names, "cert alice");
    assert_refused(p, &["delete", "asbob:web"], &names, "cert alice");
    assert_eq!(d.state(id), "ACTIVE");
    let listed = d.ok(&["--json", "list", "asbob:"]);
    assert!(listed.contains("cert alice"), "{listed}");
    let replay = d.client().ok_bytes(&["replay", "asbob:web"]);
    assert_eq!(PcapFile::from_bytes(&replay.stdout).packets.len(), 20);

    d.ok(&["stop", "asalice:web"]);
    assert_eq!(d.state(id), "PAUSED", "the owner's certificate may stop it");
    assert_refused(p, &["start", "asbob:web"], &names, "cert alice");
    // uid 0 over the UNIX socket is an admin.
    d.ok(&["start", "web"]);
    assert_eq!(d.state(id), "ACTIVE");
    d.ok(&["delete", "asalice:web"]);
    assert!(d.try_capture(id).is_none());
}

#[test]
fn certificates_named_in_admin_clients_may_act_on_any_capture() {
    const PORT: u16 = 25108;
    if !require_root() {
        return;
    }
    let certs = Certs::make_for(&["localhost"], &["alice", "bob", "carol"]);
    let port = free_port();
    let d = certs
        .builder(port)
        .config("admin_clients = [\"carol\"]\n")
        .start();
    let url = format!("https://localhost:{port}");
    certs.add_client_remote(&d, "asalice", &url, "alice");
    certs.add_client_remote(&d, "asbob", &url, "bob");
    certs.add_client_remote(&d, "ascarol", &url, "carol");

    let out = d.ok(&[
        "init",
        "asalice:lo",
        &format!("udp port {PORT}"),
        "--alias",
        "web",
    ]);
    let id: u64 = out.lines().next().unwrap_or("").trim().parse().unwrap();
    d.ok(&["start", "asalice:web"]);
    let err = assert_refused(
        d.client(),
        &["stop", "asbob:web"],
        &["web", &id.to_string()],
        "cert alice",
    );
    assert!(
        err.contains("admin_clients"),
        "the refusal says where admin certificates are named: {err}"
    );

    d.ok(&["stop", "ascarol:web"]);
    assert_eq!(d.state(id), "PAUSED", "an admin certificate may stop it");
    d.ok(&["start", "ascarol:web"]);
    assert_eq!(d.state(id), "ACTIVE", "an admin certificate may start it");
    d.ok(&["delete", "ascarol:web"]);
    assert!(
        d.try_capture(id).is_none(),
        "an admin certificate may delete it"
    );
}
