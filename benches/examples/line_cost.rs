//! What a random cache line costs on this machine, by how many distinct 4 KiB pages the lines
//! fall in. A pin lookup at 1M pins reads one line of a 128 MiB table, in a page of its own:
//! this tells the line's own cost (cache or memory) from its address translation's.
//!
//!   cargo run --release -p egressfwd-benches --example line_cost [-- small-pages]
//!
//! Each case reads 65,536 lines (the pipeline bench's working set) in a random order, in
//! bursts of 32 (32 prefetches, then 32 loads, as the pipeline's stages do), from a 256 MiB
//! region on transparent huge pages (as the appliance places its flow tables), or on 4 KiB
//! pages with `small-pages`. Prints the median ns a line of 40 passes, and the case.

use std::time::Instant;

const LINES: usize = 1 << 16;
const REGION: usize = 256 << 20;
const PAGE: usize = 4096;
const LINE: usize = 64;

#[repr(align(64))]
#[derive(Clone, Copy)]
struct Line([u64; 8]);

fn shuffle<T>(items: &mut [T], rng: &mut egressfwd_benches::Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.next() as usize % (i + 1));
    }
}

/// Median ns a line over 40 passes of `lines` (indexes of lines in `region`).
fn cost(region: &[Line], lines: &[usize]) -> f64 {
    let mut passes = Vec::new();
    let mut sum = 0u64;
    for _ in 0..40 {
        let start = Instant::now();
        for burst in lines.chunks(32) {
            for &line in burst {
                prefetch_index::prefetch_index(region, line);
            }
            for &line in burst {
                sum = sum.wrapping_add(std::hint::black_box(region[line].0[0]));
            }
        }
        passes.push(start.elapsed().as_nanos() as f64 / lines.len() as f64);
    }
    std::hint::black_box(sum);
    passes.sort_by(f64::total_cmp);
    passes[passes.len() / 2]
}

/// `pages` random 4 KiB pages of the region, `per_page` lines of each (spread over the
/// page), repeated to 65,536 reads if they are fewer.
fn spread(pages: usize, per_page: usize, order: &[usize]) -> Vec<usize> {
    let lines_per_page = PAGE / LINE;
    let stride = lines_per_page / per_page;
    let once: Vec<usize> = order[..pages]
        .iter()
        .flat_map(|&page| {
            // A different first line in each page: lines at one offset would share a set.
            let first = page * 7 % stride;
            (0..per_page).map(move |k| page * lines_per_page + first + k * stride)
        })
        .collect();
    once.iter()
        .copied()
        .cycle()
        .take(LINES.max(once.len()))
        .collect()
}

fn main() {
    let small_pages = std::env::args().nth(1).as_deref() == Some("small-pages");
    // One huge page more than the region, to use its 2 MiB-aligned interior.
    let backing = vec![Line([1; 8]); (REGION + (2 << 20)) / LINE];
    let skip = backing.as_ptr().align_offset(2 << 20) / LINE;
    let region = &backing[skip..skip + REGION / LINE];
    let pages = if small_pages {
        "4 KiB pages".to_string()
    } else {
        let advice = dpdk_sys::advise_huge_pages(region.as_ptr().cast(), REGION);
        format!("transparent huge pages ({advice:?})")
    };
    println!("{} lines a case, in bursts of 32, {pages}", LINES);
    let mut rng = egressfwd_benches::Rng(0x6c69_6e65);
    let mut order: Vec<usize> = (0..REGION / PAGE).collect();
    shuffle(&mut order, &mut rng);
    let mut lines_128: Vec<usize> = (0..(128 << 20) / LINE).collect();
    shuffle(&mut lines_128, &mut rng);
    let mut cases: Vec<(String, Vec<usize>)> =
        vec![("packed in 4 MiB".into(), (0..LINES).collect())];
    // The same 4 MiB of lines over more and more pages.
    for (pages, per_page) in [(1024, 64), (4096, 16), (16384, 4), (65536, 1)] {
        let name = format!("{pages} pages, {per_page} lines each (4 MiB of lines)");
        cases.push((name, spread(pages, per_page, &order)));
    }
    // Less data than the L2 holds, over more and more pages.
    for pages in [1024, 2048, 4096, 16384] {
        let name = format!("{pages} pages, 1 line each ({} KiB), repeated", pages / 16);
        cases.push((name, spread(pages, 1, &order)));
    }
    cases.push((
        "65,536 random lines of the first 128 MiB (a pin lookup's)".into(),
        lines_128[..LINES].to_vec(),
    ));
    for (name, mut lines) in cases {
        shuffle(&mut lines, &mut rng);
        println!("{:5.1} ns  {name}", cost(region, &lines));
    }
}
