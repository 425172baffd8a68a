//! `netfence view` and `netfence serve` in a real browser: Debian's chromium, headless
//! (scripts/test installs it). The page is opened, its script runs, and the DOM chromium
//! dumps after the load event is compared with `netfence list -o json` and `netfence query
//! -o json`, and the server's what-ifs with `netfence what-if -o json`. URL hashes
//! (`#expand=all`, `#select=ns/workload`, `#ask=…`, `#whatif=…`) drive the page
//! deterministically.

mod common;

use common::Scratch;
use serde::Deserialize as _;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .expect("run netfence")
}

fn ok(args: &[&str]) -> String {
    let output = netfence(args);
    assert!(
        output.status.success(),
        "netfence {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example() -> String {
    root().join("examples/eks-guide").display().to_string()
}

/// A fresh directory under the system temp dir.
fn scratch(tag: &str) -> Scratch {
    Scratch::dir("view", tag)
}

static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The chromium binary. Missing chromium fails the test (scripts/test installs it).
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .expect("chromium not found on PATH: run scripts/test (it installs Debian's chromium)")
}

/// The DOM after the page's script ran (chromium dumps it after the load event; with
/// `budget_ms`, after that much virtual time, for pages that fetch).
fn dump_dom(url: &str, budget_ms: Option<u32>) -> String {
    // One browser at a time: the timing test measures the page, not a race between browsers.
    let _one = BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let profile = scratch(&format!(
        "profile-{}",
        url.len() ^ budget_ms.unwrap_or(0) as usize
    ));
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    if let Some(budget) = budget_ms {
        command.arg(format!("--virtual-time-budget={budget}"));
    }
    command
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().expect("reader").expect("read dom");
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page's script did not finish on {url}:\n{}",
        &dom[..dom.len().min(2000)]
    );
    dom
}

/// HTML attribute text back to plain text.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every value of `attribute` on elements whose opening tag contains `marker`.
fn attributes(dom: &str, marker: &str, attribute: &str) -> Vec<String> {
    let needle = format!("{attribute}=\"");
    let mut out = Vec::new();
    for tag in dom.split('<').filter(|tag| tag.contains(marker)) {
        let tag = tag.split('>').next().unwrap_or("");
        if let Some(start) = tag.find(&needle) {
            let rest = &tag[start + needle.len()..];
            if let Some(end) = rest.find('"') {
                out.push(unescape(&rest[..end]));
            }
        }
    }
    out
}

/// (src, dst) of every line of `netfence list -o json`, and the workloads it names.
fn list(input: &str) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["list", "-f", input, "-o", "json"])).expect("list json");
    let mut edges = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for line in json.as_array().expect("array") {
        let src = line["src"].as_str().expect("src").to_string();
        let dst = line["dst"].as_str().expect("dst").to_string();
        nodes.insert(src.clone());
        nodes.insert(dst.clone());
        edges.insert((src, dst));
    }
    (edges, nodes)
}

/// The workload labels and the (src, dst) edges drawn on the page.
fn page_nodes_and_edges(dom: &str) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let nodes: BTreeSet<String> = attributes(dom, "class=\"node ", "data-label")
        .into_iter()
        .collect();
    let srcs = attributes(dom, "class=\"edge\"", "data-src");
    let dsts = attributes(dom, "class=\"edge\"", "data-dst");
    assert_eq!(srcs.len(), dsts.len());
    (nodes, srcs.into_iter().zip(dsts).collect())
}

fn check_page_against_list(input: &str, tag: &str) -> String {
    let dir = scratch(tag);
    let page = dir.join("view.html");
    ok(&["view", "-f", input, "-o", page.to_str().expect("path")]);
    let dom = dump_dom(&format!("file://{}#expand=all", page.display()), None);
    let (edges, list_nodes) = list(input);
    let (nodes, page_edges) = page_nodes_and_edges(&dom);
    assert!(!edges.is_empty(), "{input}: list is empty");
    for node in &list_nodes {
        assert!(
            nodes.contains(node),
            "{input}: {node} missing from the page"
        );
    }
    assert_eq!(
        page_edges, edges,
        "{input}: the page's edges differ from netfence list"
    );
    dom
}

#[test]
fn example_page_shows_every_workload_and_edge_of_list() {
    let dom = check_page_against_list(&example(), "example");
    // Every workload of the example, with or without connections.
    for workload in [
        "shop-frontend/web[Deployment]",
        "shop-backend/api[Deployment]",
        "shop-db/postgres[StatefulSet]",
        "kube-system/coredns[Deployment]",
    ] {
        assert!(
            dom.contains(&format!("data-label=\"{workload}\"")),
            "{workload}"
        );
    }
}

#[test]
fn generated_page_shows_every_workload_and_edge_of_list() {
    let dir = scratch("gen");
    let cluster = dir.join("cluster");
    ok(&[
        "gen",
        "--pods",
        "400",
        "--namespaces",
        "8",
        "--policies",
        "60",
        "--calico",
        "3",
        "--seed",
        "7",
        "-o",
        cluster.to_str().expect("path"),
    ]);
    check_page_against_list(cluster.to_str().expect("path"), "gen-page");
}

/// The policies `netfence query` reports as selecting `workload`'s pod for each direction.
fn selected_by(to: &str, from: &str) -> (Vec<String>, Vec<String>) {
    // A denied query exits 1 and prints the same JSON.
    let output = netfence(&[
        "query",
        "-f",
        &example(),
        "--from",
        from,
        "--to",
        to,
        "--port",
        "TCP/8080",
        "-o",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("query json");
    let names = |side: &serde_json::Value| -> Vec<String> {
        side["selected_by"]
            .as_array()
            .expect("selected_by")
            .iter()
            .map(|p| p["policy"].as_str().expect("policy").to_string())
            .collect()
    };
    (names(&json["ingress"]), names(&json["egress"]))
}

#[test]
fn selecting_a_workload_shows_the_policies_that_select_it() {
    let dir = scratch("select");
    let page = dir.join("view.html");
    ok(&["view", "-f", &example(), "-o", page.to_str().expect("path")]);
    for (workload, peer) in [
        ("shop-backend/api", "shop-frontend/web"),
        ("shop-frontend/web", "shop-backend/api"),
    ] {
        let dom = dump_dom(
            &format!("file://{}#select={workload}", page.display()),
            None,
        );
        assert!(
            dom.contains(&format!("data-selected=\"{workload}\"")),
            "{workload} not selected"
        );
        // Ingress policies of `workload`: those selecting it when it is the destination.
        let (ingress, _) = selected_by(workload, peer);
        // Egress policies: those selecting it as the source.
        let (_, egress) = selected_by(peer, workload);
        let ingress_on_page = attributes(&dom, "data-dir=\"ingress\" data-policy", "data-policy");
        let egress_on_page = attributes(&dom, "data-dir=\"egress\" data-policy", "data-policy");
        let names = |list: Vec<String>| -> Vec<String> {
            list.iter()
                .map(|p| p.split_once(' ').map_or(p.clone(), |(_, n)| n.to_string()))
                .collect()
        };
        assert!(
            !ingress.is_empty() || !egress.is_empty(),
            "{workload}: no policy"
        );
        assert_eq!(names(ingress_on_page), ingress, "{workload} ingress");
        assert_eq!(names(egress_on_page), egress, "{workload} egress");
    }
}

#[test]
fn labels_with_script_end_tags_do_not_break_the_page() {
    // Directory names become the title and every policy's origin on the page.
    let dir = scratch("escape");
    let nasty = dir
        .join("x</")
        .join("script><script>document.title='pwned'</")
        .join("script>");
    std::fs::create_dir_all(&nasty).expect("nasty dir");
    std::fs::copy(
        root().join("examples/eks-guide/40-shop.yaml"),
        nasty.join("shop.yaml"),
    )
    .expect("copy");
    let input = nasty.display().to_string();
    assert!(input.contains("</script>"));
    let page = dir.join("view.html");
    ok(&["view", "-f", &input, "-o", page.to_str().expect("path")]);
    let html = std::fs::read_to_string(&page).expect("page");
    // Self-contained: nothing is loaded from anywhere (no src or href, no link element), and
    // the page's Content-Security-Policy forbids loads by default.
    for forbidden in [" src=", " href=", "<link", "@import", "url(http"] {
        assert!(!html.contains(forbidden), "page contains {forbidden}");
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    // Only the two script elements of the page itself close.
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "a label closed a script"
    );
    let dom = dump_dom(
        &format!("file://{}#select=shop-backend/api", page.display()),
        None,
    );
    // The injected script would have renamed the document.
    assert!(!dom.contains("<title>pwned</title>"));
    assert!(dom.contains("<title>netfence view: "));
    assert!(dom.contains("data-selected=\"shop-backend/api\""));
    // The title is shown as text, whole.
    assert!(dom.contains(&format!(
        "<span id=\"title\">{}</span>",
        input
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    )));
}

#[test]
fn svg_export_has_every_workload_and_is_deterministic() {
    let dir = scratch("svg");
    let (a, b) = (dir.join("a.svg"), dir.join("b.svg"));
    ok(&["view", "-f", &example(), "-o", a.to_str().expect("path")]);
    ok(&["view", "-f", &example(), "-o", b.to_str().expect("path")]);
    let svg = std::fs::read_to_string(&a).expect("svg");
    assert_eq!(svg, std::fs::read_to_string(&b).expect("svg"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    let (edges, nodes) = list(&example());
    for node in &nodes {
        assert!(svg.contains(&format!("data-label=\"{node}\"")), "{node}");
    }
    assert_eq!(svg.matches("<path class=\"e\"").count(), edges.len());
    let bad = netfence(&["view", "-f", &example(), "-o", "view.png"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A running `netfence serve`, stopped on drop.
struct Served {
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if let Some(rest) = line.strip_prefix("netfence: serving http://") {
            address = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    let address = address.expect("serve printed no address");
    Served { child, address }
}

/// (status, body) of one HTTP/1.0 request.
fn http(address: &str, method: &str, path: &str, host: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let host = host.map_or(String::new(), |h| format!("Host: {h}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\n{host}Content-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_queries_like_netfence_query() {
    let served = serve(&["-f", &example()]);
    let host = Some(served.address.as_str());
    for (from, to, port) in [
        ("shop-frontend/web", "shop-backend/api", "TCP/8080"),
        ("shop-backend/api", "shop-frontend/web", "TCP/8080"),
        ("shop-frontend/web", "kube-system/coredns", "UDP/53"),
        ("203.0.113.9", "shop-frontend/web", "TCP/8080"),
    ] {
        let path = format!(
            "/api/query?from={}&to={}&port={}",
            from.replace('/', "%2F"),
            to.replace('/', "%2F"),
            port.replace('/', "%2F")
        );
        let (status, body) = http(&served.address, "GET", &path, host);
        assert_eq!(status, 200, "{body}");
        let served_json: serde_json::Value = serde_json::from_str(&body).expect("json");
        let cli = netfence(&[
            "query",
            "-f",
            &example(),
            "--from",
            from,
            "--to",
            to,
            "--port",
            port,
            "-o",
            "json",
        ]);
        let cli_json: serde_json::Value = serde_json::from_slice(&cli.stdout).expect("cli json");
        assert_eq!(served_json, cli_json, "{from} -> {to} {port}");
    }
    let (status, body) = http(
        &served.address,
        "GET",
        "/api/query?from=nope%2Fx&to=a&port=TCP%2F1",
        host,
    );
    assert_eq!(status, 400);
    assert!(body.contains("no such pod"), "{body}");
    assert_eq!(http(&served.address, "POST", "/api/query", host).0, 405);
    assert_eq!(http(&served.address, "GET", "/api/what-if", host).0, 405);
    assert_eq!(
        http(&served.address, "GET", "/", Some("evil.example:80")).0,
        421
    );
    let (status, page) = http(&served.address, "GET", "/", host);
    assert_eq!(status, 200);
    assert!(page.contains("\"live\":true"));
    // The query box, in the browser.
    let dom = dump_dom(
        &format!(
            "http://{}/#ask=shop-frontend/web,shop-backend/api,TCP/8080",
            served.address
        ),
        Some(5000),
    );
    assert!(
        dom.contains("id=\"query-verdict\" data-verdict=\"allow\""),
        "query box: {}",
        attributes(&dom, "id=\"query-result\"", "id").join(",")
    );
}

#[test]
fn serve_draws_observed_flows_with_mismatches() {
    let flows = root().join("examples/flows");
    let cluster = flows.join("cluster.yaml").display().to_string();
    let vpc = flows.join("vpc.log").display().to_string();
    let served = serve(&["-f", &cluster, "--vpc", &vpc]);
    let (status, body) = http(&served.address, "GET", "/api/data", Some(&served.address));
    assert_eq!(status, 200);
    let data: serde_json::Value = serde_json::from_str(&body).expect("data");
    let observed = data["observed"].as_array().expect("observed");
    assert!(!observed.is_empty());
    let mismatches: u64 = observed
        .iter()
        .map(|o| o["mismatches"].as_u64().expect("mismatches"))
        .sum();
    let flows: u64 = observed
        .iter()
        .map(|o| o["flows"].as_u64().expect("flows"))
        .sum();
    // The same flows through `flows check`: one JSON line per judged flow.
    let check = netfence(&[
        "flows", "check", "-f", &cluster, "--vpc", &vpc, "-o", "json",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&check.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(flows, lines.len() as u64);
    let expected = lines.iter().filter(|l| l["mismatch"] == true).count() as u64;
    assert_eq!(mismatches, expected);
    let dom = dump_dom(
        &format!("http://{}/#expand=all", served.address),
        Some(2000),
    );
    let drawn = dom.matches("class=\"obs").count();
    assert!(drawn > 0, "no observed edge drawn");
    // The example log has mismatches (jobs/batch -> shop/api allowed by the log, denied by
    // policy); each drawn with the mismatch mark.
    assert!(expected > 0);
    assert!(dom.contains("class=\"obs mismatch\""), "no mismatch marked");
}

/// An input that cannot be read to its end (a `.gz` cut short) or at all (a missing path)
/// stops that input only, as in `flows check`: the server starts with the records it read,
/// those before the cut included, and names each input it could not read in the observed
/// traffic's notes; with nothing read at all, it does not start.
#[test]
fn serve_draws_what_it_could_read_and_names_what_it_could_not() {
    let flows = root().join("examples/flows");
    let cluster = flows.join("cluster.yaml").display().to_string();
    let vpc = flows.join("vpc.log").display().to_string();
    // The example's records without their header line, many times over, cut at 3/5.
    let records: String = std::fs::read_to_string(flows.join("vpc.log"))
        .expect("example log")
        .lines()
        .skip(1)
        .map(|line| format!("{line}\n"))
        .collect();
    let whole = common::gzip(records.repeat(5_000).as_bytes());
    let cut = Scratch::path("serve-cut", "cut.log.gz");
    std::fs::write(&cut, &whole[..whole.len() * 3 / 5]).expect("cut log");
    let missing = Scratch::path("serve-cut", "missing.log");
    let (cut, missing) = (cut.display().to_string(), missing.display().to_string());
    let inputs = ["-f", &cluster, "--vpc", &vpc, &cut, &missing];
    let served = serve(&inputs);
    let (status, body) = http(&served.address, "GET", "/api/data", Some(&served.address));
    assert_eq!(status, 200);
    let data: serde_json::Value = serde_json::from_str(&body).expect("data");
    let notes: Vec<&str> = data["observed_notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|note| note.as_str())
        .collect();
    let named = |path: &str| notes.iter().any(|n| n.contains(&format!("--vpc {path}: ")));
    assert!(named(&cut) && named(&missing), "{notes:?}");
    let drawn: u64 = data["observed"]
        .as_array()
        .expect("observed")
        .iter()
        .map(|o| o["flows"].as_u64().expect("flows"))
        .sum();
    // `flows check` of the same inputs judges the same flows (and exits 2 for the two).
    let check = netfence(&[&["flows", "check"][..], &inputs, &["-o", "json"]].concat());
    assert_eq!(check.status.code(), Some(2));
    let judged = String::from_utf8_lossy(&check.stdout).lines().count() as u64;
    let whole_file = 6 * (1 + 5_000);
    assert!(judged > 6 && judged < whole_file, "{judged}");
    assert_eq!(drawn, judged);
    // Nothing read: no server.
    let nothing = netfence(&[
        "serve",
        "-f",
        &cluster,
        "--vpc",
        &missing,
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(nothing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        stderr.contains(&format!("error: --vpc {missing}: ")),
        "{stderr}"
    );
}

/// A page with the shape `netfence view` gives the 10k-pod, 2k-policy `netfence gen --seed
/// 1` cluster (1,500 workloads in 100 namespaces, 300 external ranges, about 800,000 allowed
/// workload edges), built directly: the debug binary of the test suite needs minutes for the
/// real cluster's connection list (scripts/bench-view measures the real one with the release
/// binary). Checks that the page at that size finishes its first render: the script writes
/// `performance.now()` at the end of it into `data-ready-ms`. The 2 s target is a benchmark's
/// (`scripts/bench-view`, medians beside a baseline), not this test's: a timed assertion
/// failed here on a slower machine (2.1–2.8 s) with nothing wrong in the page.
#[test]
fn a_10k_pod_page_finishes_its_first_render() {
    use netfence_view::data::*;
    let side = |isolated: bool, policies: Vec<usize>| SideView {
        isolated,
        partly: false,
        policies,
    };
    let namespaces: Vec<NamespaceView> = (0..100)
        .map(|i| NamespaceView {
            name: format!("ns-{i:04}"),
            findings: Vec::new(),
        })
        .collect();
    let policies: Vec<PolicyView> = (0..2000)
        .map(|i| PolicyView {
            tier: "default".to_string(),
            kind: "NetworkPolicy".to_string(),
            name: format!("ns-{:04}/policy-{i}", i % 100),
            origin: format!("40-policies.yaml:{}", i * 7),
            findings: Vec::new(),
        })
        .collect();
    let mut nodes: Vec<NodeView> = (0..1500)
        .map(|i| NodeView {
            id: format!("ns-{:04}/app-{i}", i / 15),
            label: format!("ns-{:04}/app-{i}[Deployment]", i / 15),
            ns: Some(i / 15),
            name: format!("app-{i}"),
            kind: "Deployment".to_string(),
            pods: 7,
            pod_names: (0..7).map(|p| format!("app-{i}-{p}")).collect(),
            ingress: Some(side(i % 3 != 0, vec![(i / 15) * 20, (i / 15) * 20 + 1])),
            egress: Some(side(i % 3 != 0, vec![(i / 15) * 20 + 2])),
            findings: Vec::new(),
        })
        .collect();
    nodes.extend((0..300).map(|i| NodeView {
        id: format!("10.{i}.0.0-10.{i}.255.255"),
        label: format!("10.{i}.0.0-10.{i}.255.255[External]"),
        ns: None,
        name: format!("10.{i}.0.0-10.{i}.255.255"),
        kind: "External".to_string(),
        pods: 0,
        pod_names: Vec::new(),
        ingress: None,
        egress: None,
        findings: Vec::new(),
    }));
    let mut edges = Edges {
        out_count: vec![0; nodes.len()],
        ..Edges::default()
    };
    // Every workload reaches the open third of the workloads and its namespace's others.
    for src in 0..1500 {
        for dst in 0..1800 {
            let open = dst < 1500 && dst % 3 == 0;
            let same_namespace = dst < 1500 && dst / 15 == src / 15;
            if src != dst && (open || same_namespace || (dst >= 1500 && src % 2 == 0)) {
                edges.out_count[src] += 1;
                edges.dst.push(dst);
                edges.conn.push(dst % 40);
                edges.probes.push(dst % 1000);
            }
        }
    }
    assert!(edges.len() > 500_000, "{} edges", edges.len());
    let explanation = serde_json::json!({"direction": "Ingress", "allowed": true, "endpoint": null,
        "selected_by": [{"tier": "default", "kind": "NetworkPolicy", "policy": "ns-0001/policy-1"}],
        "passed_through": [], "outcome": {"reason": "rule", "rule": {"tier": "default",
        "kind": "NetworkPolicy", "policy": "ns-0001/policy-1", "rule": 0, "action": "Allow",
        "origin": "40-policies.yaml:7"}}});
    let data = ViewData {
        title: "synthetic 10k".to_string(),
        live: false,
        namespaces,
        nodes,
        policies,
        edges,
        conns: (0..40).map(|i| format!("TCP {}", 8000 + i)).collect(),
        probe_sets: (0..1000)
            .map(|i| {
                vec![ProbeView {
                    port: format!("TCP/{}", 8000 + i % 40),
                    verdict: "allow",
                    egress: i % 1400,
                    ingress: (i + 1) % 1400,
                }]
            })
            .collect(),
        explanations: vec![explanation; 1400],
        findings: Vec::new(),
        cluster_findings: Vec::new(),
        audit_notes: Vec::new(),
        observed: Vec::new(),
        observed_notes: Vec::new(),
        what_if: false,
    };
    let dir = scratch("large");
    let page = dir.join("view.html");
    std::fs::write(&page, netfence_view::html::page(&data)).expect("write page");
    let mut times = Vec::new();
    for _ in 0..3 {
        let dom = dump_dom(&format!("file://{}", page.display()), None);
        let ready: f64 = attributes(&dom, "data-ready-ms", "data-ready-ms")[0]
            .parse()
            .expect("ready ms");
        times.push(ready);
    }
    times.sort_by(f64::total_cmp);
    let median = times[1];
    println!("10k-shaped page interactive after {median:.0} ms (runs: {times:?})");
    assert!(
        times.iter().all(|t| t.is_finite() && *t > 0.0),
        "first render times: {times:?}"
    );
}

/// The text of the first element whose opening tag contains `marker`, up to its closing tag.
fn element_text<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the DOM"));
    let rest = &dom[start..];
    &rest[..rest.find("</div>").unwrap_or(rest.len())]
}

#[test]
fn an_edge_shows_the_rule_query_says_decides_it() {
    let dir = scratch("edge");
    let page = dir.join("view.html");
    ok(&["view", "-f", &example(), "-o", page.to_str().expect("path")]);
    for (from, to, port) in [
        ("shop-frontend/web", "shop-backend/api", "TCP/8080"),
        ("shop-backend/api", "shop-db/postgres", "TCP/5432"),
    ] {
        let (src, dst) = (format!("{from}[Deployment]"), format!("{to}[StatefulSet]"));
        let dst = if to.starts_with("shop-db") {
            dst
        } else {
            format!("{to}[Deployment]")
        };
        let dom = dump_dom(&format!("file://{}#edge={src}>{dst}", page.display()), None);
        assert!(
            dom.contains(&format!("data-selected-edge=\"{src}&gt;{dst}\"")),
            "edge {src} -> {dst} not selected"
        );
        // The probe's explanations follow its opening tag, egress then ingress.
        let marker = format!("class=\"probe\" data-port=\"{port}\"");
        let probe = &dom[dom.find(&marker).expect("probe on the page")..];
        let json: serde_json::Value = serde_json::from_str(&ok(&[
            "query",
            "-f",
            &example(),
            "--from",
            from,
            "--to",
            to,
            "--port",
            port,
            "-o",
            "json",
        ]))
        .expect("query json");
        assert_eq!(json["verdict"], "allow");
        for direction in ["egress", "ingress"] {
            let outcome = &json[direction]["outcome"];
            let shown = element_text(probe, &format!("data-dir=\"{direction}\""));
            assert_eq!(outcome["reason"], "rule", "{direction}: {outcome}");
            let policy = outcome["rule"]["policy"].as_str().expect("policy");
            let rule = outcome["rule"]["rule"].as_u64().expect("rule");
            assert!(
                shown.contains(&format!("<b>{policy}</b> {direction} rule {rule} ")),
                "{from} -> {to} {direction}: page says {shown}, query says {outcome}"
            );
        }
    }
}

#[test]
fn isolation_colours_and_search_follow_the_engine() {
    let dir = scratch("isolation");
    let page = dir.join("view.html");
    ok(&["view", "-f", &example(), "-o", page.to_str().expect("path")]);
    let dom = dump_dom(&format!("file://{}#q=postgres", page.display()), None);
    for (workload, peer) in [
        ("shop-frontend/web", "shop-backend/api"),
        ("shop-backend/api", "shop-frontend/web"),
        ("shop-db/postgres", "shop-backend/api"),
        ("kube-system/coredns", "shop-frontend/web"),
        ("default/nginx", "shop-frontend/web"),
    ] {
        let (ingress, _) = selected_by(workload, peer);
        let (_, egress) = selected_by(peer, workload);
        let class = match (!ingress.is_empty(), !egress.is_empty()) {
            (true, true) => "both",
            (true, false) => "ingress",
            (false, true) => "egress",
            (false, false) => "open",
        };
        let marker = format!("data-id=\"{workload}\"");
        let tag = dom
            .split('<')
            .find(|tag| tag.contains(&marker))
            .unwrap_or_else(|| panic!("{workload} not drawn"));
        assert!(
            tag.starts_with(&format!("g class=\"node {class}")),
            "{workload}: expected {class}, drawn as <{tag}"
        );
        // The search matched postgres only.
        assert_eq!(
            tag.contains(" match\""),
            workload == "shop-db/postgres",
            "{workload}: <{tag}"
        );
    }
    assert!(dom.contains("1 match(es)"), "search status");
}

#[test]
fn bad_inputs_are_refused_with_exit_2_and_the_name() {
    let dir = scratch("bad");
    let page = dir.join("view.html");
    for (args, named) in [
        (
            vec![
                "view",
                "-f",
                "/nonexistent-netfence",
                "-o",
                page.to_str().expect("path"),
            ],
            "/nonexistent-netfence",
        ),
        (
            vec![
                "view",
                "-f",
                &example(),
                "-o",
                "/nonexistent-netfence/x.html",
            ],
            "/nonexistent-netfence/x.html",
        ),
        (vec!["view", "-f", &example(), "-o", "view.png"], "view.png"),
        (
            vec!["serve", "-f", &example(), "--listen", "nonsense"],
            "nonsense",
        ),
    ] {
        let output = netfence(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(named),
            "{args:?}: {stderr}"
        );
    }
    assert!(!page.exists());
}

/// (status, body) of one HTTP/1.0 request with a body and extra headers.
fn http_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before reading a large body and close: a failed write is
    // then expected, and the answer is still there to read.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, response[split + 4..].to_vec())
}

/// `POST /api/what-if` of `manifests` deleting `deletions`: (status, body).
fn post_what_if(address: &str, manifests: &str, deletions: &[&str]) -> (u16, Vec<u8>) {
    let query = if deletions.is_empty() {
        String::new()
    } else {
        format!("?delete={}", deletions.join(",").replace('/', "%2F"))
    };
    http_with(
        address,
        "POST",
        &format!("/api/what-if{query}"),
        &[("Content-Type", "text/plain")],
        manifests.as_bytes(),
    )
}

/// `netfence what-if -f INPUT --apply FILE --delete … -o json`: its stdout, byte for byte.
fn cli_what_if(input: &str, manifests: &str, deletions: &[&str], tag: &str) -> Vec<u8> {
    let dir = scratch(&format!("whatif-{tag}"));
    let mut args = vec![
        "what-if".to_string(),
        "-f".to_string(),
        input.to_string(),
        "-o".to_string(),
        "json".to_string(),
    ];
    if !manifests.is_empty() {
        let json = manifests.trim_start().starts_with('{');
        let file = dir.join(if json { "change.json" } else { "change.yaml" });
        std::fs::write(&file, manifests).expect("write change");
        args.extend(["--apply".to_string(), file.display().to_string()]);
    }
    for deletion in deletions {
        args.extend(["--delete".to_string(), deletion.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = netfence(&args);
    // Exit 0: no change; 1: connections change (as diff); anything else is a failure.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "netfence {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The eks-guide changes: a policy pair added (web may reach postgres), a policy deleted
/// (DNS for `default`), namespaces relabelled (kube-system loses the label the DNS rules
/// select, shop-frontend its tier), a change and a deletion together, and a JSON policy
/// opening postgres.
fn example_changes() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let added = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: shop-frontend}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {tier: database}}}], ports: [{protocol: TCP, port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop-db}
spec:
  podSelector: {matchLabels: {app: postgres}}
  policyTypes: [Ingress]
  ingress: [{from: [{namespaceSelector: {matchLabels: {tier: frontend}}, podSelector: {matchLabels: {app: web}}}], ports: [{protocol: TCP, port: 5432}]}]
";
    let relabelled = "apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-frontend, labels: {tier: storefront}}
";
    vec![
        ("added", added.to_string(), vec![]),
        (
            "deleted",
            String::new(),
            vec!["NetworkPolicy/default/allow-dns-access"],
        ),
        ("relabelled", relabelled.to_string(), vec![]),
        (
            "both",
            added.to_string(),
            vec!["NetworkPolicy/default/allow-dns-access"],
        ),
        (
            "json",
            r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "db-open", "namespace": "shop-db"},
 "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}}"#
                .to_string(),
            vec![],
        ),
    ]
}

/// Generated-cluster changes: a policy opening every pod of a namespace to ingress, the first
/// allowing NetworkPolicy deleted, the first namespace relabelled (the generator's namespace
/// selectors only reach pods their own egress rules never name, so this one moves nothing:
/// it checks the empty answer; the example's relabelling moves connections).
fn generated_changes(dir: &Path) -> Vec<(&'static str, String, Vec<String>)> {
    let mut namespaces = Vec::new();
    let mut policy = None;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read generated dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read generated file");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc).expect("yaml");
            let field = |v: &serde_yaml_ng::Value| v.as_str().unwrap_or("").to_string();
            let (kind, meta) = (field(&value["kind"]), &value["metadata"]);
            let api = field(&value["apiVersion"]);
            if kind == "Namespace" && field(&meta["name"]) != "kube-system" {
                namespaces.push(field(&meta["name"]));
            }
            // A policy that allows something (not the per-namespace default-deny).
            let allows = field(&meta["name"]) != "default-deny";
            if kind == "NetworkPolicy"
                && api == "networking.k8s.io/v1"
                && allows
                && policy.is_none()
            {
                policy = Some(format!(
                    "NetworkPolicy/{}/{}",
                    field(&meta["namespace"]),
                    field(&meta["name"])
                ));
            }
        }
    }
    let ns = namespaces.first().expect("a generated namespace").clone();
    let open = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: open-ingress, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress], ingress: [{{}}]}}\n"
    );
    let relabelled = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{relabelled: \"yes\"}}}}\n"
    );
    vec![
        ("added", open, vec![]),
        (
            "deleted",
            String::new(),
            vec![policy.expect("a generated NetworkPolicy")],
        ),
        ("relabelled", relabelled, vec![]),
    ]
}

#[test]
fn serve_what_if_equals_netfence_what_if() {
    // The example: every change moves some connection.
    let served = serve(&["-f", &example()]);
    let data_before = http(&served.address, "GET", "/api/data", None).1;
    for (tag, manifests, deletions) in example_changes() {
        let (status, body) = post_what_if(&served.address, &manifests, &deletions);
        assert_eq!(status, 200, "{tag}: {}", String::from_utf8_lossy(&body));
        let cli = cli_what_if(&example(), &manifests, &deletions, tag);
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&cli),
            "{tag}: the server's answer differs from netfence what-if -o json"
        );
        let lines: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
        assert!(!lines.is_empty(), "{tag}: the change moves no connection");
    }
    // A preview changes nothing: the first one again gives the same answer, the data too.
    let (tag, manifests, deletions) = &example_changes()[0];
    let again = post_what_if(&served.address, manifests, deletions).1;
    assert_eq!(again, cli_what_if(&example(), manifests, deletions, tag));
    assert_eq!(
        http(&served.address, "GET", "/api/data", None).1,
        data_before
    );
    drop(served);

    // A generated cluster (Kubernetes and Calico policies).
    let dir = scratch("whatif-gen");
    let _ = std::fs::remove_dir_all(&dir);
    ok(&[
        "gen",
        "--pods",
        "80",
        "--namespaces",
        "4",
        "--policies",
        "16",
        "--calico",
        "4",
        "--seed",
        "11",
        "-o",
        &dir.display().to_string(),
    ]);
    let input = dir.display().to_string();
    let served = serve(&["-f", &input]);
    for (tag, manifests, deletions) in generated_changes(&dir) {
        let deletions: Vec<&str> = deletions.iter().map(String::as_str).collect();
        let (status, body) = post_what_if(&served.address, &manifests, &deletions);
        assert_eq!(status, 200, "{tag}: {}", String::from_utf8_lossy(&body));
        let cli = cli_what_if(&input, &manifests, &deletions, &format!("gen-{tag}"));
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&cli),
            "generated {tag}: the server's answer differs from netfence what-if -o json"
        );
        let lines: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
        if tag != "relabelled" {
            assert!(
                !lines.is_empty(),
                "generated {tag}: the change moves no connection"
            );
        }
    }
}

#[test]
fn serve_what_if_refuses_bad_requests() {
    let served = serve(&["-f", &example()]);
    let address = served.address.as_str();
    let refused = |manifests: &str, deletions: &[&str], expect: &str| {
        let (status, body) = post_what_if(address, manifests, deletions);
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{manifests:?} {deletions:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("json error");
        let message = error["error"].as_str().expect("an error message");
        assert!(message.contains(expect), "{expect:?} not in {message:?}");
    };
    refused("kind: [unclosed\n", &[], "what-if.yaml");
    refused(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: default}\n",
        &[],
        "example.com/v1/Gadget",
    );
    refused(
        "",
        &["NetworkPolicy/default/no-such-policy"],
        "no such object",
    );
    refused("", &["Nonsense"], "delete");
    refused("", &[], "nothing to change");
    refused(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: default}\nspec: {}\n",
        &[],
        "Ingress",
    );
    // Over 1 MiB: 413, whether announced by Content-Length or not.
    let big = vec![b'#'; (1 << 20) + 1];
    let (status, _) = http_with(address, "POST", "/api/what-if", &[], &big);
    assert_eq!(status, 413);
    let mut stream = TcpStream::connect(address).expect("connect");
    let head = format!(
        "POST /api/what-if HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        big.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    let _ = stream.write_all(&big);
    let _ = stream.write_all(b"\r\n0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "chunked: {}",
        &response[..response.len().min(200)]
    );
    // Only POST; no other origin; the loopback Host check as for every route.
    assert_eq!(http(address, "GET", "/api/what-if", Some(address)).0, 405);
    assert_eq!(http(address, "PUT", "/api/what-if", Some(address)).0, 405);
    let (status, _) = http_with(
        address,
        "POST",
        "/api/what-if?delete=NetworkPolicy%2Fdefault%2Fallow-dns-access",
        &[("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(status, 403);
    assert_eq!(
        http(address, "POST", "/api/what-if", Some("evil.example:80")).0,
        421
    );
    // A refused request changes nothing either: a good one still answers as the CLI does.
    let deletions = ["NetworkPolicy/default/allow-dns-access"];
    let (status, body) = post_what_if(address, "", &deletions);
    assert_eq!(status, 200);
    assert_eq!(body, cli_what_if(&example(), "", &deletions, "after-bad"));
}

/// `%XX` for every byte that is not unreserved (the hash's value as `URLSearchParams` reads it).
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_what_if_box_shows_the_lines_of_netfence_what_if() {
    let served = serve(&["-f", &example()]);
    let (_, manifests, _) = &example_changes()[0];
    let deletions = ["NetworkPolicy/default/allow-dns-access"];
    let cli = cli_what_if(&example(), manifests, &deletions, "browser");
    let lines: Vec<serde_json::Value> = serde_json::from_slice(&cli).expect("cli json");
    assert!(!lines.is_empty());
    let dom = dump_dom(
        &format!(
            "http://{}/#whatif={}&delete={}",
            served.address,
            percent(manifests),
            percent(&deletions.join(","))
        ),
        Some(5000),
    );
    // The page's elements only (the script's own text holds the same markup as templates).
    let page = &dom[..dom.find("<script").unwrap_or(dom.len())];
    let field = |name: &str| attributes(page, "class=\"wi-line ", name);
    let (types, srcs, dsts) = (field("data-type"), field("data-src"), field("data-dst"));
    let (ref1s, ref2s, drawn_flags) = (field("data-ref1"), field("data-ref2"), field("data-drawn"));
    let shown: Vec<(String, String, String, String, String)> = (0..types.len())
        .map(|i| {
            (
                types[i].clone(),
                srcs[i].clone(),
                dsts[i].clone(),
                ref1s[i].clone(),
                ref2s[i].clone(),
            )
        })
        .collect();
    let text = |v: &serde_json::Value| v.as_str().expect("string").to_string();
    let expected: Vec<(String, String, String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                text(&l["diff-type"]),
                text(&l["source"]),
                text(&l["destination"]),
                text(&l["ref1"]),
                text(&l["ref2"]),
            )
        })
        .collect();
    assert_eq!(shown, expected, "the page's what-if lines");
    // Each line between workloads of the graph is drawn over it.
    let drawn: BTreeSet<(String, String)> = attributes(page, "class=\"wi ", "data-src")
        .iter()
        .zip(attributes(page, "class=\"wi ", "data-dst").iter())
        .map(|(s, d)| (s.clone(), d.clone()))
        .collect();
    let drawable: BTreeSet<(String, String)> = (0..shown.len())
        .filter(|&i| drawn_flags[i] == "1")
        .map(|i| (shown[i].1.clone(), shown[i].2.clone()))
        .collect();
    assert!(!drawable.is_empty());
    assert_eq!(drawn, drawable, "the changed edges drawn");
    // An error is shown, with the status.
    let dom = dump_dom(
        &format!(
            "http://{}/#delete={}",
            served.address,
            percent("NetworkPolicy/default/no-such-policy")
        ),
        Some(5000),
    );
    let page = &dom[..dom.find("<script").unwrap_or(dom.len())];
    let error = element_text(page, "id=\"what-if-error\"");
    assert!(error.contains("no such object"), "{error}");
    assert_eq!(
        attributes(page, "id=\"what-if-error\"", "data-status"),
        vec!["400".to_string()]
    );
}
