use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = warden::service::store::Store::open(&dir.path().join("s.db"), 4).unwrap();
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(store.customer("ABC123").unwrap());
    }
    println!("customer: {:.2} µs", t.elapsed().as_secs_f64() / n as f64 * 1e6);
}
