fn main() {
    let p = std::env::args().nth(1).unwrap();
    let t = cachekeeper::inventory::scan(std::path::Path::new(&p), 2).unwrap();
    println!("total {:?}", t.usage.total());
    for p in &t.profiles {
        println!(
            "profile {:?} {:?} {:?} {:?}",
            p.rel,
            p.layouts,
            p.state,
            p.usage.total()
        );
    }
    for u in &t.units {
        println!(
            "unit {} {:?} targets={:?} rustc={:?} deps={:?} dependents={:?} bs={} paths={:?} reclaim={} used={:?}",
            u.name(),
            u.key.layout,
            u.targets,
            u.rustc,
            u.deps.len(),
            u.dependents,
            u.build_script,
            u.paths,
            u.reclaimable,
            u.last_used
        );
    }
    for i in &t.incremental {
        println!(
            "incr {} owners={:?} {:?} {}",
            i.name, i.owners, i.newest_session, i.usage.bytes
        );
    }
    for o in &t.orphans {
        println!("orphan {:?} {:?}", o.key, o.paths);
    }
    println!("errors {:?} rustc_vv={}", t.errors, t.rustc_vv.is_some());
}
