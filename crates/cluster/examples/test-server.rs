//! The in-process test API server as a program, to try `--cluster` and `netfence watch`
//! without a cluster: serves the manifests under DIR (Calico and admin-policy CRDs
//! installed), writes `kubeconfig` into OUT, then reads commands on stdin, one per line:
//! `apply FILE` (create or replace each document) or `delete FILE` (delete each document's
//! object), and `expire` (a compaction: watches end with 410 Gone).
//!
//! `cargo run -p netfence-cluster --features testing --example test-server -- DIR OUT`

use netfence_cluster::testing::{resources_with, TestServer};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};

fn documents(path: &Path) -> Vec<Value> {
    let mut files = vec![path.to_path_buf()];
    if path.is_dir() {
        files = std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
    }
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("cannot read {}", file.display());
            continue;
        };
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(Value::Null) => {}
                Ok(value) => out.push(value),
                Err(e) => eprintln!("{}: {e}", file.display()),
            }
        }
    }
    out
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [dir, out] = args.as_slice() else {
        eprintln!("usage: test-server DIR OUT");
        std::process::exit(2);
    };
    let server = match TestServer::start(resources_with(&[
        "projectcalico.org",
        "policy.networking.k8s.io",
    ])) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for doc in documents(dir) {
        if let Err(e) = server.apply(&doc) {
            eprintln!("{e}");
        }
    }
    match server.write_kubeconfig(out) {
        Ok(path) => println!(
            "serving {} at {}; kubeconfig {}",
            dir.display(),
            server.url(),
            path.display()
        ),
        Err(e) => {
            eprintln!("{}: {e}", out.display());
            std::process::exit(1);
        }
    }
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let text = |v: &Value, f: &str| v["metadata"][f].as_str().map(str::to_string);
        match line.trim().split_once(' ') {
            Some(("apply", file)) => {
                for doc in documents(Path::new(file)) {
                    match server.apply(&doc) {
                        Ok(rv) => println!(
                            "applied {} {} (resourceVersion {rv})",
                            doc["kind"],
                            text(&doc, "name").unwrap_or_default()
                        ),
                        Err(e) => eprintln!("{e}"),
                    }
                }
            }
            Some(("delete", file)) => {
                for doc in documents(Path::new(file)) {
                    let (api, kind) = (
                        doc["apiVersion"].as_str().unwrap_or(""),
                        doc["kind"].as_str().unwrap_or(""),
                    );
                    let name = text(&doc, "name").unwrap_or_default();
                    let deleted =
                        server.delete(api, kind, text(&doc, "namespace").as_deref(), &name);
                    println!("deleted {kind} {name}: {deleted}");
                }
            }
            _ if line.trim() == "expire" => {
                server.expire();
                println!("expired");
            }
            _ => eprintln!("commands: apply FILE | delete FILE | expire"),
        }
    }
}
