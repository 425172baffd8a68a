//! Fuzz the manifest loader end to end: arbitrary bytes as a YAML (or JSON) file, then, when
//! it loads, compile it, evaluate a few connections and audit it. Nothing may panic. Once
//! strictly, once as JSON, once leniently (invalid objects left out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfence_engine::{connlist, Endpoint, Engine};
use netfence_model::{Loader, Protocol};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (name, lenient) in [("fuzz.yaml", false), ("fuzz.json", false), ("fuzz.yaml", true)] {
        let mut loader = Loader::new();
        loader.set_lenient(lenient);
        loader.set_default_namespace("fuzz");
        loader.load_str(name, text);
        if let Ok(inventory) = loader.finish() {
            let engine = Engine::new(inventory);
            let n = engine.inventory().pods().len().min(4);
            for src in 0..n {
                for dst in 0..n {
                    let _ = engine.explain(Endpoint::Pod(src), Endpoint::Pod(dst), Protocol::Tcp, 80);
                    let _ = engine.allowed_conns(Endpoint::Pod(src), Endpoint::Pod(dst));
                }
            }
            if n <= 4 {
                let _ = connlist(&engine);
            }
            if engine.inventory().pods().len() <= 16 {
                let _ = netfence_audit::audit(&engine);
            }
        }
    }
});
