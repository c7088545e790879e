//! Every rejection rule of the contract (section 4), each with the exact place reported.

use topology::parse;
use topology::parse::parse_in_sections;

const BASE: &str = r#"version = 1

[[location]]
name = "lhr"
latitude = 51.47
longitude = -0.45

[[location]]
name = "cdg"
latitude = 49.01
longitude = 2.55

[[datacenter]]
name = "lhr01"
location = "lhr"

[[datacenter]]
name = "cdg01"
location = "cdg"

[[server]]
name = "lhr01-a"
datacenter = "lhr01"
underlay = "10.10.1.1"

[[server]]
name = "cdg01-b"
datacenter = "cdg01"
underlay = "10.20.1.2"

[[pool]]
name = "acme"
holders = [{ server = "lhr01-a", weight = 2 }, { server = "cdg01-b" }]

[[egress]]
prefix = "198.51.100.0/30"
pool = "acme"

[[egress]]
prefix = "2001:db8:1::/48"
"#;

/// The errors for BASE with `extra` appended, as printed.
fn errors_with(extra: &str) -> Vec<String> {
    errors(&format!("{BASE}{extra}"))
}

/// The errors of `text`, which must be the same whether the file is read whole or in
/// sections (the smallest: one entry each), as large files are.
fn errors(text: &str) -> Vec<String> {
    let read = |sections| match parse_in_sections("fleet.toml", text, sections) {
        Ok(topology) => (Some(topology), Vec::new()),
        Err(diags) => (None, diags.iter().map(|d| d.to_string()).collect()),
    };
    let whole = read(None);
    assert_eq!(read(Some(1)), whole, "read in sections of one entry");
    assert_eq!(read(Some(200)), whole, "read in sections of 200 bytes");
    assert_eq!(parse("fleet.toml", text).ok(), whole.0);
    whole.1
}

const BASE_LINES: usize = 40;

/// Line number (1-based) of line `n` of the appended text.
fn extra_line(n: usize) -> usize {
    BASE_LINES + n
}

#[test]
fn base_topology_is_valid() {
    assert_eq!(BASE.lines().count(), BASE_LINES);
    let topology = parse("fleet.toml", BASE).unwrap();
    let summary = topology.summary();
    assert_eq!(
        (
            summary.locations,
            summary.datacenters,
            summary.servers,
            summary.pools
        ),
        (2, 2, 2, 1)
    );
    assert_eq!(
        (summary.ipv4_egress_addresses, summary.ipv6_egress_prefixes),
        (4, 1)
    );
}

#[test]
fn bundled_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml");
    let topology = topology::load(std::path::Path::new(path)).unwrap();
    assert_eq!(topology.summary().to_string(), "4 locations, 5 datacenters, 8 servers, 5 pools, 157 IPv4 egress addresses, 2 IPv6 egress prefixes");
}

#[test]
fn unknown_keys_everywhere_are_each_reported() {
    let errs = errors_with("colour = \"blue\"\n");
    // A bare key after [[egress]] belongs to that egress table.
    assert_eq!(
        errs,
        vec![format!(
            "fleet.toml:{}:1: unknown key `colour` in egress (expected one of: prefix, pool)",
            extra_line(1)
        )]
    );

    let text = BASE
        .replace("version = 1\n", "version = 1\nowner = \"netops\"\n")
        .replace(
            "name = \"lhr01\"\nlocation = \"lhr\"",
            "name = \"lhr01\"\nlocation = \"lhr\"\nracks = 4",
        );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0], "fleet.toml:2:1: unknown key `owner` (expected one of: version, port_slice, location, datacenter, server, pool, egress)");
    assert!(
        errs[1].starts_with("fleet.toml:17:1: unknown key `racks` in datacenter"),
        "{errs:?}"
    );

    // An entry with an unknown key is still checked against the rest of the file.
    let errs = errors(&BASE.replace(
        "underlay = \"10.20.1.2\"",
        "underlay = \"10.10.1.1\"\nrack = 7",
    ));
    assert_eq!(
        errs,
        vec![
            "fleet.toml:29:12: duplicate underlay address 10.10.1.1 (first used on line 24)",
            "fleet.toml:30:1: unknown key `rack` in server (expected one of: name, datacenter, underlay)",
        ]
    );

    let errs = errors(&BASE.replace(
        "{ server = \"cdg01-b\" }",
        "{ server = \"cdg01-b\", wieght = 3 }",
    ));
    assert_eq!(
        errs,
        vec!["fleet.toml:33:70: unknown key `wieght` in holder (expected one of: server, weight, drain)"]
    );
}

#[test]
fn duplicate_names_of_each_kind() {
    let errs = errors_with(
        "\n[[location]]\nname = \"lhr\"\nlatitude = 1.0\nlongitude = 1.0\n\
         \n[[datacenter]]\nname = \"cdg01\"\nlocation = \"cdg\"\n\
         \n[[server]]\nname = \"lhr01-a\"\ndatacenter = \"lhr01\"\nunderlay = \"10.99.0.1\"\n\
         \n[[pool]]\nname = \"acme\"\nholders = [{ server = \"lhr01-a\" }]\n",
    );
    assert_eq!(
        errs,
        vec![
            format!(
                "fleet.toml:{}:8: duplicate location name `lhr` (first defined on line 4)",
                extra_line(3)
            ),
            format!(
                "fleet.toml:{}:8: duplicate datacenter name `cdg01` (first defined on line 18)",
                extra_line(8)
            ),
            format!(
                "fleet.toml:{}:8: duplicate server name `lhr01-a` (first defined on line 22)",
                extra_line(12)
            ),
            format!(
                "fleet.toml:{}:8: duplicate pool name `acme` (first defined on line 32)",
                extra_line(17)
            ),
        ]
    );
}

#[test]
fn duplicate_underlay() {
    let errs = errors_with(
        "\n[[server]]\nname = \"lhr01-z\"\ndatacenter = \"lhr01\"\nunderlay = \"10.20.1.2\"\n",
    );
    assert_eq!(
        errs,
        vec![format!(
            "fleet.toml:{}:12: duplicate underlay address 10.20.1.2 (first used on line 29)",
            extra_line(5)
        )]
    );
}

#[test]
fn references_to_missing_things() {
    let errs = errors_with(
        "\n[[datacenter]]\nname = \"ams01\"\nlocation = \"ams\"\n\
         \n[[server]]\nname = \"x\"\ndatacenter = \"nowhere01\"\nunderlay = \"10.99.0.1\"\n\
         \n[[pool]]\nname = \"p\"\nholders = [{ server = \"ghost\" }]\n\
         \n[[egress]]\nprefix = \"192.0.2.0/24\"\npool = \"nopool\"\n",
    );
    assert_eq!(
        errs,
        vec![
            format!("fleet.toml:{}:12: unknown location `ams`", extra_line(4)),
            format!(
                "fleet.toml:{}:14: unknown datacenter `nowhere01`",
                extra_line(8)
            ),
            format!("fleet.toml:{}:23: unknown server `ghost`", extra_line(13)),
            format!("fleet.toml:{}:8: unknown pool `nopool`", extra_line(17)),
        ]
    );
}

#[test]
fn holders_written_with_escapes_are_the_servers_they_name() {
    // Holders are kept compactly as places in the file; an escaped name is decoded instead.
    let errs = errors_with(
        "\n[[pool]]\nname = \"p2\"\nholders = [{ server = \"lhr01-\\u0061\" }, { server = \"lhr01-a\" }]\n\
         \n[[pool]]\nname = \"p3\"\nholders = [{ server = \"gh\\u006fst\" }]\n",
    );
    assert_eq!(
        errs,
        vec![
            format!(
                "fleet.toml:{}:52: server `lhr01-a` is listed twice in pool `p2`",
                extra_line(4)
            ),
            format!("fleet.toml:{}:23: unknown server `ghost`", extra_line(8)),
        ]
    );
    let ok = format!(
        "{BASE}\n[[pool]]\nname = \"p2\"\nholders = [{{ server = \"lhr01-\\u0061\" }}, {{ server = \"cdg01-b\" }}]\n"
    );
    let topology = parse("fleet.toml", &ok).unwrap();
    let p2 = topology.pools.iter().find(|p| p.name == "p2").unwrap();
    let names: Vec<&str> = p2
        .holders
        .iter()
        .map(|h| topology.servers[h.server.0 as usize].name.as_str())
        .collect();
    assert_eq!(names, ["lhr01-a", "cdg01-b"]);
}

#[test]
fn pool_without_holders_and_pool_with_a_server_twice() {
    let errs = errors_with(
        "\n[[pool]]\nname = \"empty\"\nholders = []\n\
         \n[[pool]]\nname = \"twice\"\nholders = [{ server = \"lhr01-a\" }, { server = \"lhr01-a\", weight = 3 }]\n",
    );
    assert_eq!(
        errs,
        vec![
            format!(
                "fleet.toml:{}:11: pool `empty` has no holders",
                extra_line(4)
            ),
            format!(
                "fleet.toml:{}:47: server `lhr01-a` is listed twice in pool `twice`",
                extra_line(8)
            ),
        ]
    );
}

#[test]
fn ipv4_pool_spanning_more_than_four_locations() {
    let mut extra = String::new();
    for (i, loc) in ["ams", "fra", "mad"].iter().enumerate() {
        extra.push_str(&format!(
            "\n[[location]]\nname = \"{loc}\"\nlatitude = 50.0\nlongitude = {i}.0\n\n[[datacenter]]\nname = \"{loc}01\"\nlocation = \"{loc}\"\n\n[[server]]\nname = \"{loc}01-a\"\ndatacenter = \"{loc}01\"\nunderlay = \"10.50.{i}.1\"\n"
        ));
    }
    let four = "\n[[pool]]\nname = \"four\"\nholders = [{ server = \"lhr01-a\" }, { server = \"cdg01-b\" }, { server = \"ams01-a\" }, { server = \"fra01-a\" }]\n";
    assert_eq!(
        errors_with(&format!("{extra}{four}")),
        Vec::<String>::new(),
        "four locations are allowed"
    );
    let five = "\n[[pool]]\nname = \"five\"\nholders = [{ server = \"lhr01-a\" }, { server = \"cdg01-b\" }, { server = \"ams01-a\" }, { server = \"fra01-a\" }, { server = \"mad01-a\" }]\n";
    let errs = errors_with(&format!("{extra}{five}"));
    let line = BASE_LINES + extra.lines().count() + 4;
    assert_eq!(
        errs,
        vec![format!("fleet.toml:{line}:11: pool `five` is held in 5 locations (lhr, cdg, ams, fra, mad); an IPv4 pool may span at most 4")]
    );
}

#[test]
fn ipv4_egress_needs_a_pool_and_ipv6_egress_must_not_have_one() {
    let errs = errors_with("\n[[egress]]\nprefix = \"192.0.2.0/24\"\n\n[[egress]]\nprefix = \"2001:db8:9::/48\"\npool = \"acme\"\n");
    assert_eq!(
        errs,
        vec![
            format!("fleet.toml:{}:10: IPv4 egress prefix 192.0.2.0/24 names no pool (add `pool = \"...\"`)", extra_line(3)),
            format!("fleet.toml:{}:8: IPv6 egress prefix 2001:db8:9::/48 must not name a pool: IPv6 egress is global", extra_line(7)),
        ]
    );
}

#[test]
fn overlapping_egress_prefixes() {
    let errs = errors_with(
        "\n[[egress]]\nprefix = \"198.51.100.0/24\"\npool = \"acme\"\n\
         \n[[egress]]\nprefix = \"198.51.100.2\"\npool = \"acme\"\n\
         \n[[egress]]\nprefix = \"2001:db8:1:5::/64\"\n",
    );
    assert_eq!(
        errs,
        vec![
            format!("fleet.toml:{}:10: egress prefix 198.51.100.0/24 overlaps 198.51.100.0/30 (line 36)", extra_line(3)),
            format!("fleet.toml:{}:10: egress prefix 198.51.100.2/32 overlaps 198.51.100.0/24 (line {})", extra_line(7), extra_line(3)),
            format!("fleet.toml:{}:10: egress prefix 2001:db8:1:5::/64 overlaps 2001:db8:1::/48 (line 40)", extra_line(11)),
        ]
    );
    // Adjacent is not overlapping.
    assert_eq!(
        errors_with("\n[[egress]]\nprefix = \"198.51.100.4/30\"\npool = \"acme\"\n"),
        Vec::<String>::new()
    );
}

#[test]
fn coordinates_out_of_range() {
    let errs = errors(
        &BASE
            .replace("latitude = 51.47", "latitude = 91")
            .replace("longitude = 2.55", "longitude = -180.5"),
    );
    assert_eq!(
        errs,
        vec![
            "fleet.toml:5:12: latitude 91 is out of range -90..=90".to_owned(),
            "fleet.toml:11:13: longitude -180.5 is out of range -180..=180".to_owned(),
        ]
    );
    let errs = errors(&BASE.replace("latitude = 51.47", "latitude = nan"));
    assert_eq!(
        errs,
        vec!["fleet.toml:5:12: latitude NaN is out of range -90..=90".to_owned()]
    );
}

#[test]
fn weights_out_of_range() {
    for (weight, col) in [("0", 43), ("1001", 43), ("-5", 43)] {
        let errs = errors(&BASE.replace("weight = 2", &format!("weight = {weight}")));
        assert_eq!(
            errs,
            vec![format!(
                "fleet.toml:33:{col}: weight {weight} is out of range 1..=1000"
            )]
        );
    }
    assert_eq!(
        errors(&BASE.replace("weight = 2", "weight = 1000")),
        Vec::<String>::new()
    );
}

#[test]
fn version_must_be_one() {
    assert_eq!(
        errors(&BASE.replace("version = 1", "version = 2")),
        vec![
            "fleet.toml:1:11: unsupported topology version 2 (this build reads version 1)"
                .to_owned()
        ]
    );
    assert_eq!(
        errors(&BASE.replace("version = 1\n", "\n")),
        vec!["fleet.toml:1:1: missing `version = 1`".to_owned()]
    );
    assert_eq!(
        errors(&BASE.replace("version = 1", "version = \"1\"")),
        vec!["fleet.toml:1:11: `version` must be an integer".to_owned()]
    );
}

#[test]
fn bad_values_say_what_is_wrong() {
    let errs = errors(
        &BASE
            .replace("underlay = \"10.10.1.1\"", "underlay = \"10.10.1\"")
            .replace("198.51.100.0/30", "198.51.100.1/30"),
    );
    assert_eq!(
        errs,
        vec![
            "fleet.toml:24:12: underlay `10.10.1` is not an IPv4 address".to_owned(),
            "fleet.toml:36:10: `198.51.100.1/30` has host bits set beyond /30 (did you mean `198.51.100.0/30`?)".to_owned(),
        ]
    );
    assert_eq!(
        errors(&BASE.replace("latitude = 51.47", "latitude = \"north\"")),
        vec!["fleet.toml:5:12: `latitude` must be a number, not the string \"north\""]
    );
    assert_eq!(
        errors(&BASE.replace("weight = 2", "weight = 2.5")),
        vec!["fleet.toml:33:43: `weight` must be an integer, not the float 2.5"]
    );
    assert_eq!(
        errors(&BASE.replace("weight = 2", "weight = 99999999999999999999")),
        vec!["fleet.toml:33:43: `weight` 99999999999999999999 is out of range"]
    );
    assert_eq!(
        errors(&BASE.replace("{ server = \"cdg01-b\" }", "{ weight = 3 }")),
        vec!["fleet.toml:33:48: missing field `server` in holder"]
    );
    assert_eq!(
        errors(&BASE.replace("{ server = \"cdg01-b\" }", "\"cdg01-b\"")),
        vec!["fleet.toml:33:48: each `holder` entry must be a table"]
    );
    assert_eq!(
        errors(&BASE.replace("holders = [", "holders = 7 # [")),
        vec!["fleet.toml:33:11: `holders` must be an array, not the integer 7"]
    );
    // A whole number is a coordinate too.
    assert!(parse(
        "fleet.toml",
        &BASE.replace("latitude = 51.47", "latitude = 51")
    )
    .is_ok());
    let errs = errors(&BASE.replace("name = \"lhr01-a\"\ndatacenter", "datacenter"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("fleet.toml:21:1: missing field `name`")),
        "{errs:?}"
    );
    let errs = errors(&BASE.replace("[[egress]]\nprefix = \"2001", "[egress]\nprefix = \"2001"));
    assert!(!errs.is_empty());
}

#[test]
fn syntax_errors_are_reported_with_their_place() {
    let errs = errors("version = 1\n[[location]\nname = \"x\"\n");
    assert!(!errs.is_empty());
    assert!(errs[0].starts_with("fleet.toml:2:"), "{errs:?}");
    let errs = errors("version = = 1\n");
    assert!(errs[0].starts_with("fleet.toml:1:"), "{errs:?}");
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let text = BASE
        .replace("latitude = 51.47", "latitude = 100")
        .replace("location = \"cdg\"", "location = \"cdx\"")
        .replace("underlay = \"10.20.1.2\"", "underlay = \"10.10.1.1\"")
        .replace("weight = 2", "weight = 0");
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    let lines: Vec<&str> = errs.iter().map(|e| e.split(':').nth(1).unwrap()).collect();
    assert_eq!(lines, ["5", "19", "29", "33"]);
}

#[test]
fn load_reports_unreadable_and_non_utf8_files() {
    let err = topology::load(std::path::Path::new("/nonexistent/fleet.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/fleet.toml:1:1: cannot read:"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("topology-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, b"version = 1\n# caf\xe9\n").unwrap();
    let err = topology::load(&path).unwrap_err();
    assert!(
        err.to_string().ends_with(":2:6: file is not valid UTF-8"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn egress_prefixes_must_be_unicast_routable() {
    for (prefix, pool, block) in [
        ("0.0.0.0/8", true, "0.0.0.0/8 (\"this network\")"),
        ("127.0.0.1", true, "127.0.0.0/8 (loopback)"),
        ("224.0.0.0/24", true, "224.0.0.0/4 (multicast)"),
        ("239.255.255.250", true, "224.0.0.0/4 (multicast)"),
        (
            "255.255.255.255",
            true,
            "240.0.0.0/4 (reserved, with the limited broadcast address)",
        ),
        ("0.0.0.0/0", true, "0.0.0.0/8 (\"this network\")"),
        ("ff02::/16", false, "ff00::/8 (multicast)"),
        ("::1", false, "::1/128 (loopback)"),
        ("::", false, "::/128 (unspecified)"),
    ] {
        let pool_line = if pool { "pool = \"acme\"\n" } else { "" };
        let shown = prefix.parse::<topology::Prefix>().unwrap();
        assert_eq!(
            errors_with(&format!("\n[[egress]]\nprefix = \"{prefix}\"\n{pool_line}")),
            vec![format!(
                "fleet.toml:{}:10: egress prefix {shown} is not unicast-routable: it overlaps {block}",
                extra_line(3)
            )],
            "{prefix}"
        );
    }
}

#[test]
fn underlays_are_unicast_and_never_egress_addresses() {
    let text = BASE.replace("underlay = \"10.20.1.2\"", "underlay = \"224.0.0.9\"");
    assert_eq!(
        errors(&text),
        vec![
            "fleet.toml:29:12: underlay 224.0.0.9 is not a unicast address: it is in 224.0.0.0/4 (multicast)"
                .to_owned()
        ]
    );
    let text = BASE.replace("underlay = \"10.20.1.2\"", "underlay = \"198.51.100.2\"");
    assert_eq!(
        errors(&text),
        vec![
            "fleet.toml:29:12: underlay 198.51.100.2 is inside egress prefix 198.51.100.0/30 (line 36): an underlay is never an egress address"
                .to_owned()
        ]
    );
    // Just outside the prefix is fine.
    let text = BASE.replace("underlay = \"10.20.1.2\"", "underlay = \"198.51.100.4\"");
    assert_eq!(errors(&text), Vec::<String>::new());
}

#[test]
fn a_byte_order_mark_does_not_shift_the_columns_of_line_one() {
    let text = format!("\u{feff}{}", BASE.replace("version = 1", "version = 2"));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("fleet.toml:1:11: "), "{errs:?}");
}

#[test]
fn port_slice_is_a_power_of_two_from_16_to_4096() {
    for good in [16, 64, 4096] {
        let t = parse(
            "fleet.toml",
            &BASE.replace(
                "version = 1\n",
                &format!("version = 1\nport_slice = {good}\n"),
            ),
        )
        .unwrap();
        assert_eq!(t.port_slice, good);
    }
    assert_eq!(
        parse("fleet.toml", BASE).unwrap().port_slice,
        64,
        "the default"
    );
    for bad in ["8", "100", "8192", "0", "-64"] {
        assert_eq!(
            errors(&BASE.replace(
                "version = 1\n",
                &format!("version = 1\nport_slice = {bad}\n")
            )),
            vec![format!(
                "fleet.toml:2:14: port_slice {bad} is not a power of two in 16..=4096"
            )],
            "{bad}"
        );
    }
    assert_eq!(
        errors(&BASE.replace("version = 1\n", "version = 1\nport_slice = \"64\"\n")),
        vec!["fleet.toml:2:14: `port_slice` must be an integer".to_owned()]
    );
}

#[test]
fn drained_holders_parse_and_a_pool_cannot_be_all_drained() {
    let one_drained = BASE.replace(
        "{ server = \"cdg01-b\" }",
        "{ server = \"cdg01-b\", drain = true }",
    );
    let t = parse("fleet.toml", &one_drained).unwrap();
    assert_eq!(
        t.pools[0]
            .holders
            .iter()
            .map(|h| h.drain)
            .collect::<Vec<_>>(),
        vec![false, true]
    );
    let all_drained = one_drained.replace("weight = 2 }", "weight = 2, drain = true }");
    assert_eq!(
        errors(&all_drained),
        vec!["fleet.toml:33:11: every holder of pool `acme` is drained: it would take no new flows anywhere (undrain one)".to_owned()]
    );
    let errs = errors(&BASE.replace(
        "{ server = \"cdg01-b\" }",
        "{ server = \"cdg01-b\", drain = \"yes\" }",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`drain` must be a boolean (true or false)"),
        "{errs:?}"
    );
}

/// Large files are parsed in sections cut at entry header lines. Wherever a cut would not read
/// as TOML reads the whole file, the whole file is parsed instead; `errors` checks that each of
/// these reads alike both ways.
#[test]
fn files_read_in_sections_read_as_whole_files_do() {
    // Header lines that are not headers: inside a multi-line string and a multi-line array.
    let in_string =
        errors_with("\n[[pool]]\nname = \"\"\"\n[[pool]]\nname = 'x'\n\"\"\"\nholders = []\n");
    assert!(
        in_string
            .iter()
            .any(|e| e.contains("pool name must not be empty") || e.contains("no holders")),
        "{in_string:?}"
    );
    let in_array = errors_with("\n[[pool]]\nname = \"p2\"\nholders = [\n[[pool]]\n]\n");
    assert!(!in_array.is_empty());
    // An array of entries defined in the first section, then appended to: TOML forbids it.
    let inline_then_header = errors(&BASE.replace(
        "version = 1\n",
        "version = 1\nserver = [{ name = \"x\", datacenter = \"lhr01\", underlay = \"10.10.9.9\" }]\n",
    ));
    assert!(!inline_then_header.is_empty());
    // A table where the entries are arrays, in a later section.
    assert!(!errors_with("\n[pool]\nname = \"p2\"\n").is_empty());
    // Sub-tables of the last entry stay with it.
    let holders_as_tables = "\n[[pool]]\nname = \"p2\"\n[[pool.holders]]\nserver = \"lhr01-a\"\n[[pool.holders]]\nserver = \"cdg01-b\"\nweight = 3\n\n[[egress]]\nprefix = \"198.51.100.8/30\"\npool = \"p2\"\n";
    assert_eq!(errors_with(holders_as_tables), Vec::<String>::new());
    // Escapes in names are read as TOML says, not as written.
    let escaped = BASE.replace("name = \"acme\"", "name = \"ac\\u006de\"");
    assert_eq!(errors(&escaped), Vec::<String>::new());
    assert_eq!(parse("fleet.toml", &escaped).unwrap().pools[0].name, "acme");
    // Indented headers and headers with trailing spaces are headers too.
    let indented = BASE.replace(
        "[[egress]]\nprefix = \"2001",
        "  [[egress]]   \nprefix = \"2001",
    );
    assert_eq!(errors(&indented), Vec::<String>::new());
}
