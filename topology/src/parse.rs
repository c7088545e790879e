//! Reading a topology file: TOML → typed entries (field by field, so that every entry's
//! errors are reported, not just the first) → the validated [`Topology`].

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::ops::Range;

use hashbrown::HashMap;
use serde_spanned::Spanned;
use toml_spanner::{Arena, Array, Item, Table, Value};

use crate::diag::{Diagnostic, Diagnostics, SourceMap};
use crate::model::*;
use crate::prefix::{Ipv4Prefix, Prefix};

/// The only topology format version this build understands.
pub const FORMAT_VERSION: i64 = 1;
/// An IPv4 pool may be held in at most this many locations.
pub const MAX_POOL_LOCATIONS: usize = 4;
pub const MAX_WEIGHT: i64 = 1000;
/// Server indices are stored in 16 bits in the per-flow tables.
pub const MAX_SERVERS: usize = u16::MAX as usize;

use crate::slices::DEFAULT_PORT_SLICE;

/// The bounds of `port_slice` (contract 4; it must also be a power of two).
const PORT_SLICE_RANGE: std::ops::RangeInclusive<i64> = 16..=4096;

const ROOT_KEYS: &[&str] = &[
    "version",
    "port_slice",
    "location",
    "datacenter",
    "server",
    "pool",
    "egress",
];

/// A string value of the file, borrowed from the text wherever it is written without escapes
/// (names and references are: a million-address fleet then allocates no string per entry).
type Text<'t> = Spanned<Cow<'t, str>>;

struct LocationSpec<'t> {
    name: Text<'t>,
    latitude: Spanned<f64>,
    longitude: Spanned<f64>,
}
const LOCATION_KEYS: &[&str] = &["name", "latitude", "longitude"];

struct DatacenterSpec<'t> {
    name: Text<'t>,
    location: Text<'t>,
}
const DATACENTER_KEYS: &[&str] = &["name", "location"];

struct ServerSpec<'t> {
    name: Text<'t>,
    datacenter: Text<'t>,
    underlay: Text<'t>,
}
const SERVER_KEYS: &[&str] = &["name", "datacenter", "underlay"];

/// A holder as read: its weight and drain need nothing else of the file, so they are checked
/// as they are read, which keeps the specs of a million holders small (24 bytes each).
struct HolderSpec<'t> {
    server: InText<'t>,
    weight: u32,
    drain: bool,
}

/// A string of the file kept as its place when it is written plainly (8 bytes, read back from
/// the text), instead of a [`Text`] (40 bytes): a customer-scale file has a million holders
/// and 170,000 egress prefixes, whose strings were a third of the peak memory of a reload.
enum InText<'t> {
    /// The quoted string at `start..end` of the text, quotes included.
    Plain { start: u32, end: u32 },
    /// Written with escapes (or beyond 4 GiB): decoded as it was read.
    Decoded(Box<Text<'t>>),
}

impl<'t> InText<'t> {
    fn new(text: Text<'t>) -> Self {
        let span = text.span();
        match (
            text.get_ref(),
            u32::try_from(span.start),
            u32::try_from(span.end),
        ) {
            (Cow::Borrowed(_), Ok(start), Ok(end)) => InText::Plain { start, end },
            _ => InText::Decoded(Box::new(text)),
        }
    }

    /// The string, with its place, in `text` (the whole file).
    fn get(&self, text: &'t str) -> Text<'t> {
        match self {
            InText::Plain { start, end } => {
                let (start, end) = (*start as usize, *end as usize);
                Spanned::new(start..end, Cow::Borrowed(&text[start + 1..end - 1]))
            }
            InText::Decoded(text) => (**text).clone(),
        }
    }
}
const HOLDER_KEYS: &[&str] = &["server", "weight", "drain"];

struct PoolSpec<'t> {
    name: Text<'t>,
    holders: Spanned<Vec<HolderSpec<'t>>>,
}
const POOL_KEYS: &[&str] = &["name", "holders"];

struct EgressSpec<'t> {
    prefix: InText<'t>,
    pool: Option<InText<'t>>,
}
/// An egress entry's strings, read back for validation.
struct EgressText<'t> {
    prefix: Text<'t>,
    pool: Option<Text<'t>>,
}
const EGRESS_KEYS: &[&str] = &["prefix", "pool"];

/// The entries of one kind that were read whole, and the names of those that were not
/// (registering them keeps references to them from adding misleading "unknown ..." errors to
/// the real one).
struct Entries<'t, T> {
    ok: Vec<T>,
    failed_names: Vec<Text<'t>>,
}

impl<T> Default for Entries<'_, T> {
    fn default() -> Self {
        Self {
            ok: Vec::new(),
            failed_names: Vec::new(),
        }
    }
}

impl<T> Entries<'_, T> {
    fn append(&mut self, mut more: Self) {
        if self.ok.capacity() == 0 && self.failed_names.is_empty() {
            *self = more;
        } else {
            self.ok.append(&mut more.ok);
            self.failed_names.append(&mut more.failed_names);
        }
    }
}

#[derive(Default)]
struct Specs<'t> {
    version: Option<Spanned<i64>>,
    version_present: bool,
    port_slice: Option<Spanned<i64>>,
    locations: Entries<'t, LocationSpec<'t>>,
    datacenters: Entries<'t, DatacenterSpec<'t>>,
    servers: Entries<'t, ServerSpec<'t>>,
    pools: Entries<'t, PoolSpec<'t>>,
    egress: Entries<'t, EgressSpec<'t>>,
}

/// Parses and validates a topology. `file` is only used to name the place of each error.
pub fn parse(file: &str, text: &str) -> Result<Topology, Diagnostics> {
    parse_in_sections(file, text, Some(SECTION_BYTES))
}

/// [`parse`], reading the file in sections of about `section_bytes` (see [`read_specs`]), or
/// whole with `None`: for the tests that both read every file alike.
#[doc(hidden)]
pub fn parse_in_sections(
    file: &str,
    text: &str,
    section_bytes: Option<usize>,
) -> Result<Topology, Diagnostics> {
    let map = SourceMap::new(file, text);
    let mut errors = Vec::new();
    let specs = read_specs(&map, text, section_bytes, &mut errors);
    let topology = specs.map(|specs| validate(&map, specs, &mut errors));
    if errors.is_empty() {
        Ok(topology.expect("no errors means the specs were read"))
    } else {
        errors.sort_by_key(|d| (d.line, d.column));
        errors.dedup();
        Err(Diagnostics(errors))
    }
}

/// Reads and parses a topology file.
pub fn load(path: &std::path::Path) -> Result<Topology, Diagnostics> {
    parse_bytes(path, &read(path)?)
}

/// The bytes of a topology file, or why they cannot be read.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, Diagnostics> {
    std::fs::read(path).map_err(|err| {
        Diagnostics(vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read: {err}"),
        }])
    })
}

/// Parses the bytes of the topology file at `path` (read once by the caller, who may also
/// want their digest).
pub fn parse_bytes(path: &std::path::Path, bytes: &[u8]) -> Result<Topology, Diagnostics> {
    let file = path.display().to_string();
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(&file, text),
        Err(err) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let offset = err.valid_up_to();
            Err(Diagnostics(vec![
                SourceMap::new(&file, &text).diagnostic(offset..offset, "file is not valid UTF-8")
            ]))
        }
    }
}

/// The entries of the file, read from the TOML document (toml-spanner: a compact tree with
/// the place of every key and value).
///
/// A large fleet file is read in sections of about [`SECTION_BYTES`], each parsed on its own
/// and its tree dropped before the next: the tree of a whole 50 MB file is five times its size,
/// and toml-spanner refuses documents over 256 MiB. Splitting at the `[[kind]]` header lines
/// of the entries is exact whenever every section parses cleanly and only the first one has
/// top-level keys: a header line inside a multi-line string or array leaves the section before
/// it unterminated, which is a syntax error. For anything else (a syntax error, an odd layout)
/// the whole file is parsed at once, so that errors read exactly as for a file of any size.
fn read_specs<'t>(
    map: &SourceMap<'_>,
    text: &'t str,
    section_bytes: Option<usize>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Specs<'t>> {
    let (starts, counts) =
        section_bytes.map_or_else(Default::default, |bytes| section_starts(text, bytes));
    if starts.len() > 1 {
        let mut section_errors = Vec::new();
        if let Some(specs) = read_sections(map, text, &starts, counts, &mut section_errors) {
            errors.append(&mut section_errors);
            return Some(specs);
        }
    }
    let arena = Arena::new();
    let document = toml_spanner::parse_recoverable(text, &arena);
    if document.has_errors() {
        // What follows a syntax error is guesswork; reporting on it would mislead.
        errors.extend(
            document
                .errors()
                .iter()
                .map(|e| map.diagnostic(e.span().range(), e.message(text))),
        );
        return None;
    }
    let mut specs = Specs::default();
    let whole = Source { text, base: 0 };
    for (key, value) in document.table().iter().map(|entry| (&entry.0, &entry.1)) {
        read_root_key(
            map,
            whole,
            &mut specs,
            key.name,
            key.span.range(),
            value,
            errors,
        );
    }
    Some(specs)
}

/// The size of the sections a large topology file is parsed in (see [`read_specs`]).
const SECTION_BYTES: usize = 1 << 20;

/// Where the sections of `text` begin: at 0, at the first entry header line (`[[pool]]` and
/// the like, alone on its line), so that only the first section holds top-level keys, then at
/// the first such line after every `section_bytes`. Also how many entries of each kind of
/// [`ENTRY_KINDS`] there are, so that their specs are allocated once.
fn section_starts(text: &str, section_bytes: usize) -> (Vec<usize>, [usize; 5]) {
    let mut starts = vec![0];
    let mut counts = [0; 5];
    let mut next_cut = 0usize;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if let Some(kind) = entry_header(line) {
            counts[kind] += 1;
            if line_start >= next_cut {
                if line_start > 0 {
                    starts.push(line_start);
                }
                next_cut = line_start.saturating_add(section_bytes);
            }
        }
        line_start += line.len();
    }
    (starts, counts)
}

/// The index in [`ENTRY_KINDS`] of the entry that `line` is the header of, if it is one.
fn entry_header(line: &str) -> Option<usize> {
    let kind = line.trim().strip_prefix("[[")?.strip_suffix("]]")?;
    ENTRY_KINDS.iter().position(|k| *k == kind)
}

/// The keys that hold arrays of entries.
const ENTRY_KINDS: &[&str] = &["location", "datacenter", "server", "pool", "egress"];

/// The specs of the file read section by section, or `None` where that would not read the
/// file as TOML does (see [`read_specs`]).
fn read_sections<'t>(
    map: &SourceMap<'_>,
    text: &'t str,
    starts: &[usize],
    counts: [usize; 5],
    errors: &mut Vec<Diagnostic>,
) -> Option<Specs<'t>> {
    let mut specs = Specs::default();
    let [locations, datacenters, servers, pools, egress] = counts;
    specs.locations.ok.reserve_exact(locations);
    specs.datacenters.ok.reserve_exact(datacenters);
    specs.servers.ok.reserve_exact(servers);
    specs.pools.ok.reserve_exact(pools);
    specs.egress.ok.reserve_exact(egress);
    let mut kinds_in_first = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let section = Source { text, base: start };
        let arena = Arena::new();
        let document = toml_spanner::parse_recoverable(&text[start..end], &arena);
        if document.has_errors() {
            return None;
        }
        for (key, value) in document.table().iter().map(|entry| (&entry.0, &entry.1)) {
            if i == 0 {
                kinds_in_first.push(key.name.to_owned());
            } else if !ENTRY_KINDS.contains(&key.name)
                || kinds_in_first.iter().any(|k| k == key.name)
                || value.as_array().is_none()
            {
                // A later section begins with an entry header, so anything else at its top
                // level, or an array the first section defined, is the whole file's problem.
                return None;
            }
            let span = section.range(key.span);
            read_root_key(map, section, &mut specs, key.name, span, value, errors);
        }
    }
    Some(specs)
}

/// A part of the topology text that was parsed as a document: spans within it are offset by
/// `base` within `text`.
#[derive(Clone, Copy)]
struct Source<'t> {
    text: &'t str,
    base: usize,
}

impl<'t> Source<'t> {
    fn range(self, span: toml_spanner::Span) -> Range<usize> {
        let range = span.range();
        self.base + range.start..self.base + range.end
    }

    /// The string `value`, written at `span`: borrowed from the text unless it is written
    /// with escapes (or as a multi-line string).
    fn string(self, span: Range<usize>, value: &str) -> Cow<'t, str> {
        let quoted = self
            .text
            .get(span.start + 1..span.end.saturating_sub(1))
            .filter(|raw| *raw == value);
        match quoted {
            Some(raw) => Cow::Borrowed(raw),
            None => Cow::Owned(value.to_owned()),
        }
    }
}

fn read_root_key<'t>(
    map: &SourceMap<'_>,
    source: Source<'t>,
    specs: &mut Specs<'t>,
    key: &str,
    key_span: Range<usize>,
    value: &Item<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    match key {
        "version" => {
            specs.version_present = true;
            let span = source.range(value.span());
            match value.as_i64() {
                Some(v) => specs.version = Some(Spanned::new(span, v)),
                None => errors.push(map.diagnostic(span, "`version` must be an integer")),
            }
        }
        "port_slice" => {
            let span = source.range(value.span());
            match value.as_i64() {
                Some(v) => specs.port_slice = Some(Spanned::new(span, v)),
                None => errors.push(map.diagnostic(span, "`port_slice` must be an integer")),
            }
        }
        "location" => specs
            .locations
            .append(entries(map, source, "location", value, location, errors)),
        "datacenter" => specs.datacenters.append(entries(
            map,
            source,
            "datacenter",
            value,
            datacenter,
            errors,
        )),
        "server" => specs
            .servers
            .append(entries(map, source, "server", value, server, errors)),
        "pool" => specs
            .pools
            .append(entries(map, source, "pool", value, pool, errors)),
        "egress" => specs
            .egress
            .append(entries(map, source, "egress", value, egress, errors)),
        other => errors.push(map.diagnostic(
            key_span,
            format!(
                "unknown key `{other}` (expected one of: {})",
                ROOT_KEYS.join(", ")
            ),
        )),
    }
}

/// Reads every table of an array of tables (`[[server]]` ...) with `read`. Every problem of
/// an entry is reported; an entry with one is left out (but its name kept, see [`Entries`]).
fn entries<'t, T>(
    map: &SourceMap<'_>,
    source: Source<'t>,
    kind: &str,
    value: &Item<'_>,
    read: fn(&mut Fields<'_, '_, 't>) -> Option<T>,
    errors: &mut Vec<Diagnostic>,
) -> Entries<'t, T> {
    let Some(items) = value.as_array() else {
        errors.push(map.diagnostic(
            source.range(value.span()),
            format!("`{kind}` must be an array of tables (write `[[{kind}]]`)"),
        ));
        return Entries::default();
    };
    let mut out = Entries {
        ok: Vec::with_capacity(items.len()),
        failed_names: Vec::new(),
    };
    for item in items {
        let Some(mut fields) = Fields::of(map, source, kind, item, errors) else {
            continue;
        };
        match read(&mut fields) {
            Some(spec) if fields.whole => out.ok.push(spec),
            _ => out.failed_names.extend(fields.name()),
        }
    }
    out
}

fn location<'t>(f: &mut Fields<'_, '_, 't>) -> Option<LocationSpec<'t>> {
    f.allow(LOCATION_KEYS);
    let (name, latitude, longitude) = (
        f.string("name"),
        f.number("latitude"),
        f.number("longitude"),
    );
    Some(LocationSpec {
        name: name?,
        latitude: latitude?,
        longitude: longitude?,
    })
}

fn datacenter<'t>(f: &mut Fields<'_, '_, 't>) -> Option<DatacenterSpec<'t>> {
    f.allow(DATACENTER_KEYS);
    let (name, location) = (f.string("name"), f.string("location"));
    Some(DatacenterSpec {
        name: name?,
        location: location?,
    })
}

fn server<'t>(f: &mut Fields<'_, '_, 't>) -> Option<ServerSpec<'t>> {
    f.allow(SERVER_KEYS);
    let (name, datacenter, underlay) = (
        f.string("name"),
        f.string("datacenter"),
        f.string("underlay"),
    );
    Some(ServerSpec {
        name: name?,
        datacenter: datacenter?,
        underlay: underlay?,
    })
}

fn pool<'t>(f: &mut Fields<'_, '_, 't>) -> Option<PoolSpec<'t>> {
    f.allow(POOL_KEYS);
    let name = f.string("name");
    let holders = f.array("holders").map(|(span, items)| {
        // Sized once: a million holders in vectors grown by doubling would waste a quarter.
        let mut holders = Vec::with_capacity(items.len());
        for item in items {
            if let Some(mut fields) = f.nested("holder", item) {
                let read = holder(&mut fields);
                f.whole &= fields.whole;
                holders.extend(read);
            }
        }
        Spanned::new(span, holders)
    });
    Some(PoolSpec {
        name: name?,
        holders: holders?,
    })
}

fn holder<'t>(f: &mut Fields<'_, '_, 't>) -> Option<HolderSpec<'t>> {
    f.allow(HOLDER_KEYS);
    let server = f.string("server");
    let weight = f.optional_integer("weight").map(|weight| match weight {
        None => 1,
        Some(w) if (1..=MAX_WEIGHT).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            // Reported, but the holder is still checked against the rest of the file.
            let message = format!("weight {} is out of range 1..={MAX_WEIGHT}", w.get_ref());
            f.errors.push(f.map.diagnostic(w.span(), message));
            1
        }
    });
    let drain = f.optional_bool("drain");
    Some(HolderSpec {
        server: InText::new(server?),
        weight: weight?,
        drain: drain?.is_some_and(|d| *d.get_ref()),
    })
}

fn egress<'t>(f: &mut Fields<'_, '_, 't>) -> Option<EgressSpec<'t>> {
    f.allow(EGRESS_KEYS);
    let prefix = f.string("prefix");
    let pool = f.optional_string("pool");
    Some(EgressSpec {
        prefix: InText::new(prefix?),
        pool: pool?.map(InText::new),
    })
}

/// The fields of one table of a topology entry, read one by one: each missing, unknown or
/// ill-typed field is reported where it is, and leaves the entry not `whole`.
struct Fields<'a, 'de, 't> {
    map: &'a SourceMap<'a>,
    source: Source<'t>,
    kind: &'a str,
    table: &'a Table<'de>,
    span: Range<usize>,
    errors: &'a mut Vec<Diagnostic>,
    whole: bool,
}

impl<'a, 'de, 't> Fields<'a, 'de, 't> {
    /// The fields of `item`, which must be a table (else that is reported, and `None`).
    fn of(
        map: &'a SourceMap<'a>,
        source: Source<'t>,
        kind: &'a str,
        item: &'a Item<'de>,
        errors: &'a mut Vec<Diagnostic>,
    ) -> Option<Self> {
        let span = source.range(item.span());
        let Some(table) = item.as_table() else {
            errors.push(map.diagnostic(span, format!("each `{kind}` entry must be a table")));
            return None;
        };
        Some(Self {
            map,
            source,
            kind,
            table,
            span,
            errors,
            whole: true,
        })
    }

    /// The fields of a table inside this one (a pool's holder).
    fn nested<'b>(&'b mut self, kind: &'b str, item: &'b Item<'de>) -> Option<Fields<'b, 'de, 't>> {
        let fields = Fields::of(self.map, self.source, kind, item, self.errors);
        self.whole &= fields.is_some();
        fields
    }

    fn report(&mut self, span: Range<usize>, message: String) {
        self.errors.push(self.map.diagnostic(span, message));
        self.whole = false;
    }

    /// Reports every key not in `allowed`. The entry stays whole: its known fields are
    /// still checked against the rest of the file, so that their errors are reported too.
    fn allow(&mut self, allowed: &[&str]) {
        for (key, _) in self.table.iter().map(|entry| (&entry.0, &entry.1)) {
            if !allowed.contains(&key.name) {
                let message = format!(
                    "unknown key `{}` in {} (expected one of: {})",
                    key.name,
                    self.kind,
                    allowed.join(", ")
                );
                let span = self.source.range(key.span);
                self.errors.push(self.map.diagnostic(span, message));
            }
        }
    }

    /// The entry's name, if it has a readable one.
    fn name(&self) -> Option<Text<'t>> {
        let item = self.table.get("name")?;
        let span = self.source.range(item.span());
        let name = self.source.string(span.clone(), item.as_str()?);
        Some(Spanned::new(span, name))
    }

    /// A field's value, reporting when it is missing.
    fn required(&mut self, key: &str) -> Option<&'a Item<'de>> {
        let item = self.table.get(key);
        if item.is_none() {
            let message = format!("missing field `{key}` in {}", self.kind);
            self.report(self.span.start..self.span.start, message);
        }
        item
    }

    /// Reports that `item` (the value of `key`) is not `expected`.
    fn wrong_type(&mut self, key: &str, item: &Item<'_>, expected: &str) {
        let found = match item.value() {
            Value::String(s) => format!("the string {s:?}"),
            Value::Integer(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Boolean(b) => format!("the boolean {b}"),
            Value::DateTime(_) => "a date-time".to_owned(),
            Value::Table(_) => "a table".to_owned(),
            Value::Array(_) => "an array".to_owned(),
        };
        let span = self.source.range(item.span());
        self.report(span, format!("`{key}` must be {expected}, not {found}"));
    }

    fn string_of(&mut self, key: &str, item: &Item<'_>) -> Option<Text<'t>> {
        match item.as_str() {
            Some(s) => {
                let span = self.source.range(item.span());
                Some(Spanned::new(span.clone(), self.source.string(span, s)))
            }
            None => {
                self.wrong_type(key, item, "a string");
                None
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<Text<'t>> {
        let item = self.required(key)?;
        self.string_of(key, item)
    }

    /// `Some(None)` when absent, `None` when present but not a string.
    fn optional_string(&mut self, key: &str) -> Option<Option<Text<'t>>> {
        match self.table.get(key) {
            None => Some(None),
            Some(item) => self.string_of(key, item).map(Some),
        }
    }

    /// A float or an integer (`latitude = 51` means 51.0).
    fn number(&mut self, key: &str) -> Option<Spanned<f64>> {
        let item = self.required(key)?;
        let value = match item.value() {
            Value::Float(f) => *f,
            Value::Integer(i) => i.as_f64(),
            _ => {
                self.wrong_type(key, item, "a number");
                return None;
            }
        };
        Some(Spanned::new(self.source.range(item.span()), value))
    }

    /// `Some(None)` when absent, `None` when present but not a boolean.
    fn optional_bool(&mut self, key: &str) -> Option<Option<Spanned<bool>>> {
        let Some(item) = self.table.get(key) else {
            return Some(None);
        };
        match item.value() {
            Value::Boolean(b) => Some(Some(Spanned::new(self.source.range(item.span()), *b))),
            _ => {
                self.wrong_type(key, item, "a boolean (true or false)");
                None
            }
        }
    }

    /// `Some(None)` when absent, `None` when present but not a 64-bit integer.
    fn optional_integer(&mut self, key: &str) -> Option<Option<Spanned<i64>>> {
        let Some(item) = self.table.get(key) else {
            return Some(None);
        };
        let span = self.source.range(item.span());
        match item.value() {
            Value::Integer(i) => match i.as_i64() {
                Some(v) => Some(Some(Spanned::new(span, v))),
                None => {
                    self.report(span, format!("`{key}` {i} is out of range"));
                    None
                }
            },
            _ => {
                self.wrong_type(key, item, "an integer");
                None
            }
        }
    }

    fn array(&mut self, key: &str) -> Option<(Range<usize>, &'a Array<'de>)> {
        let item = self.required(key)?;
        match item.as_array() {
            Some(array) => Some((self.source.range(item.span()), array)),
            None => {
                self.wrong_type(key, item, "an array");
                None
            }
        }
    }
}

/// Indexes names of one kind, reporting duplicates at the second occurrence.
/// Names of entries that failed to deserialise come last: their indices point past the
/// entries that exist, which is harmless because a file with errors yields no topology.
fn index_names<'a, 't: 'a, T>(
    map: &SourceMap<'_>,
    kind: &str,
    entries: &'a Entries<'t, T>,
    name_of: impl Fn(&'a T) -> &'a Text<'t>,
    errors: &mut Vec<Diagnostic>,
) -> HashMap<&'a str, (u32, Range<usize>)> {
    let names = entries.ok.iter().map(name_of).chain(&entries.failed_names);
    let mut index: HashMap<&str, (u32, Range<usize>)> = HashMap::with_capacity(entries.ok.len());
    for (i, name) in names.enumerate() {
        if name.get_ref().is_empty() {
            errors.push(map.diagnostic(name.span(), format!("{kind} name must not be empty")));
        }
        if let Some((_, first)) = index.get(name.get_ref().as_ref()) {
            let (line, _) = map.position(first.start);
            errors.push(map.diagnostic(
                name.span(),
                format!(
                    "duplicate {kind} name `{}` (first defined on line {line})",
                    name.get_ref()
                ),
            ));
        } else {
            index.insert(name.get_ref(), (i as u32, name.span()));
        }
    }
    index
}

fn resolve(
    map: &SourceMap<'_>,
    index: &HashMap<&str, (u32, Range<usize>)>,
    what: &str,
    reference: &Text<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<u32> {
    let found = index.get(reference.get_ref().as_ref()).map(|(i, _)| *i);
    if found.is_none() {
        errors.push(map.diagnostic(
            reference.span(),
            format!("unknown {what} `{}`", reference.get_ref()),
        ));
    }
    found
}

fn validate<'t>(map: &SourceMap<'t>, specs: Specs<'t>, errors: &mut Vec<Diagnostic>) -> Topology {
    match &specs.version {
        None if specs.version_present => {}
        None => errors.push(map.diagnostic(0..0, format!("missing `version = {FORMAT_VERSION}`"))),
        Some(v) if *v.get_ref() != FORMAT_VERSION => errors.push(map.diagnostic(
            v.span(),
            format!(
                "unsupported topology version {} (this build reads version {FORMAT_VERSION})",
                v.get_ref()
            ),
        )),
        Some(_) => {}
    }
    let port_slice = match &specs.port_slice {
        None => DEFAULT_PORT_SLICE,
        Some(v) => {
            let n = *v.get_ref();
            if PORT_SLICE_RANGE.contains(&n) && (n as u64).is_power_of_two() {
                n as u16
            } else {
                errors.push(map.diagnostic(
                    v.span(),
                    format!(
                        "port_slice {n} is not a power of two in {}..={}",
                        PORT_SLICE_RANGE.start(),
                        PORT_SLICE_RANGE.end()
                    ),
                ));
                DEFAULT_PORT_SLICE
            }
        }
    };

    let location_index = index_names(map, "location", &specs.locations, |l| &l.name, errors);
    let locations: Vec<Location> = specs
        .locations
        .ok
        .iter()
        .map(|l| {
            check_coordinate(map, "latitude", &l.latitude, 90.0, errors);
            check_coordinate(map, "longitude", &l.longitude, 180.0, errors);
            Location {
                name: l.name.get_ref().to_string(),
                latitude: *l.latitude.get_ref(),
                longitude: *l.longitude.get_ref(),
            }
        })
        .collect();

    let dc_index = index_names(map, "datacenter", &specs.datacenters, |d| &d.name, errors);
    let datacenters: Vec<Datacenter> = specs
        .datacenters
        .ok
        .iter()
        .map(|d| Datacenter {
            name: d.name.get_ref().to_string(),
            location: LocationId(
                resolve(map, &location_index, "location", &d.location, errors).unwrap_or(0),
            ),
        })
        .collect();

    let server_index = index_names(map, "server", &specs.servers, |s| &s.name, errors);
    if specs.servers.ok.len() > MAX_SERVERS {
        let span = specs.servers.ok[MAX_SERVERS].name.span();
        errors.push(map.diagnostic(
            span,
            format!("too many servers: at most {MAX_SERVERS} are supported"),
        ));
    }
    let mut underlays: HashMap<Ipv4Addr, Range<usize>> =
        HashMap::with_capacity(specs.servers.ok.len());
    let servers: Vec<Server> = specs
        .servers
        .ok
        .iter()
        .map(|s| {
            let underlay = match s.underlay.get_ref().parse::<Ipv4Addr>() {
                Ok(addr) => {
                    if let Some(block) =
                        Ipv4Prefix::new(u32::from(addr), 32).and_then(Ipv4Prefix::not_unicast)
                    {
                        errors.push(map.diagnostic(
                            s.underlay.span(),
                            format!("underlay {addr} is not a unicast address: it is in {block}"),
                        ));
                    }
                    if let Some(first) = underlays.get(&addr) {
                        let (line, _) = map.position(first.start);
                        errors.push(map.diagnostic(
                            s.underlay.span(),
                            format!(
                                "duplicate underlay address {addr} (first used on line {line})"
                            ),
                        ));
                    } else {
                        underlays.insert(addr, s.underlay.span());
                    }
                    addr
                }
                Err(_) => {
                    errors.push(map.diagnostic(
                        s.underlay.span(),
                        format!("underlay `{}` is not an IPv4 address", s.underlay.get_ref()),
                    ));
                    Ipv4Addr::UNSPECIFIED
                }
            };
            let datacenter = DatacenterId(
                resolve(map, &dc_index, "datacenter", &s.datacenter, errors).unwrap_or(0),
            );
            let location = datacenters
                .get(datacenter.index())
                .map_or(LocationId(0), |d| d.location);
            Server {
                name: s.name.get_ref().to_string(),
                datacenter,
                location,
                underlay,
            }
        })
        .collect();

    let pool_index = index_names(map, "pool", &specs.pools, |p| &p.name, errors);
    let pools: Vec<Pool> = specs
        .pools
        .ok
        .iter()
        .map(|p| validate_pool(map, p, &server_index, &servers, &locations, errors))
        .collect();

    let mut egress_v4 = Vec::new();
    let mut egress_v4_spans = Vec::new();
    let mut egress_v6 = Vec::new();
    let mut egress_v6_spans = Vec::new();
    for spec in &specs.egress.ok {
        let e = EgressText {
            prefix: spec.prefix.get(map.text()),
            pool: spec.pool.as_ref().map(|p| p.get(map.text())),
        };
        let prefix = match e.prefix.get_ref().parse::<Prefix>() {
            Ok(p) => p,
            Err(message) => {
                errors.push(map.diagnostic(e.prefix.span(), message));
                continue;
            }
        };
        let not_unicast = match prefix {
            Prefix::V4(p) => p.not_unicast(),
            Prefix::V6(p) => p.not_unicast(),
        };
        if let Some(block) = not_unicast {
            errors.push(map.diagnostic(
                e.prefix.span(),
                format!("egress prefix {prefix} is not unicast-routable: it overlaps {block}"),
            ));
            continue;
        }
        match (prefix, &e.pool) {
            (Prefix::V4(p), Some(pool)) => {
                if let Some(pool) = resolve(map, &pool_index, "pool", pool, errors) {
                    egress_v4.push(EgressV4 {
                        prefix: p,
                        pool: PoolId(pool),
                    });
                    egress_v4_spans.push(e.prefix.span());
                }
            }
            (Prefix::V4(p), None) => errors.push(map.diagnostic(
                e.prefix.span(),
                format!("IPv4 egress prefix {p} names no pool (add `pool = \"...\"`)"),
            )),
            (Prefix::V6(p), None) => {
                egress_v6.push(p);
                egress_v6_spans.push(e.prefix.span());
            }
            (Prefix::V6(p), Some(pool)) => errors.push(map.diagnostic(
                pool.span(),
                format!("IPv6 egress prefix {p} must not name a pool: IPv6 egress is global"),
            )),
        }
    }
    let v4_ranges = egress_v4
        .iter()
        .map(|e| (u128::from(e.prefix.first()), u128::from(e.prefix.last())));
    report_overlaps(
        map,
        v4_ranges,
        &egress_v4_spans,
        |i| egress_v4[i].prefix.to_string(),
        errors,
    );
    report_underlays_in_egress(
        map,
        &specs.servers.ok,
        &servers,
        &egress_v4,
        &egress_v4_spans,
        errors,
    );
    let v6_ranges = egress_v6.iter().map(|p| (p.first(), p.last()));
    report_overlaps(
        map,
        v6_ranges,
        &egress_v6_spans,
        |i| egress_v6[i].to_string(),
        errors,
    );

    Topology {
        port_slice,
        locations,
        datacenters,
        servers,
        pools,
        egress_v4,
        egress_v6,
    }
}

fn check_coordinate(
    map: &SourceMap<'_>,
    what: &str,
    value: &Spanned<f64>,
    limit: f64,
    errors: &mut Vec<Diagnostic>,
) {
    let v = *value.get_ref();
    if !(v.is_finite() && (-limit..=limit).contains(&v)) {
        errors.push(map.diagnostic(
            value.span(),
            format!("{what} {v} is out of range -{limit}..={limit}"),
        ));
    }
}

fn validate_pool<'t>(
    map: &SourceMap<'t>,
    pool: &PoolSpec<'t>,
    server_index: &HashMap<&str, (u32, Range<usize>)>,
    servers: &[Server],
    locations: &[Location],
    errors: &mut Vec<Diagnostic>,
) -> Pool {
    let name = pool.name.get_ref();
    if pool.holders.get_ref().is_empty() {
        errors.push(map.diagnostic(pool.holders.span(), format!("pool `{name}` has no holders")));
    }
    let mut holders: Vec<Holder> = Vec::with_capacity(pool.holders.get_ref().len());
    for spec in pool.holders.get_ref() {
        let server_name = spec.server.get(map.text());
        let Some(server) = resolve(map, server_index, "server", &server_name, errors) else {
            continue;
        };
        if holders.iter().any(|h| h.server.0 == server) {
            errors.push(map.diagnostic(
                server_name.span(),
                format!(
                    "server `{}` is listed twice in pool `{name}`",
                    server_name.get_ref()
                ),
            ));
            continue;
        }
        holders.push(Holder {
            server: ServerId(server),
            weight: spec.weight,
            drain: spec.drain,
        });
    }
    if !holders.is_empty() && holders.iter().all(|h| h.drain) {
        errors.push(map.diagnostic(
            pool.holders.span(),
            format!(
                "every holder of pool `{name}` is drained: it would take no new flows anywhere (undrain one)"
            ),
        ));
    }
    let mut spanned: Vec<LocationId> = holders
        .iter()
        .filter_map(|h| servers.get(h.server.index()))
        .map(|s| s.location)
        .collect();
    spanned.sort_unstable();
    spanned.dedup();
    if spanned.len() > MAX_POOL_LOCATIONS {
        let names: Vec<&str> = spanned
            .iter()
            .filter_map(|l| locations.get(l.index()))
            .map(|l| l.name.as_str())
            .collect();
        errors.push(map.diagnostic(
            pool.holders.span(),
            format!(
                "pool `{name}` is held in {} locations ({}); an IPv4 pool may span at most {MAX_POOL_LOCATIONS}",
                spanned.len(),
                names.join(", ")
            ),
        ));
    }
    Pool {
        name: name.to_string(),
        holders,
    }
}

/// Reports every server whose underlay lies inside an egress prefix: the fleet's tunnels
/// would then be decided as egress traffic, and an origin's reply to that address would be
/// taken for a fleet packet.
fn report_underlays_in_egress(
    map: &SourceMap<'_>,
    specs: &[ServerSpec<'_>],
    servers: &[Server],
    egress: &[EgressV4],
    egress_spans: &[Range<usize>],
    errors: &mut Vec<Diagnostic>,
) {
    let mut by_start: Vec<usize> = (0..egress.len()).collect();
    by_start.sort_unstable_by_key(|&i| egress[i].prefix.first());
    for (spec, server) in specs.iter().zip(servers) {
        let addr = u32::from(server.underlay);
        // The last prefix starting at or before the address is the only one that can hold
        // it (overlaps are reported on their own).
        let after = by_start.partition_point(|&i| egress[i].prefix.first() <= addr);
        let Some(&i) = after.checked_sub(1).and_then(|k| by_start.get(k)) else {
            continue;
        };
        if egress[i].prefix.contains(addr) {
            let (line, _) = map.position(egress_spans[i].start);
            errors.push(map.diagnostic(
                spec.underlay.span(),
                format!(
                    "underlay {} is inside egress prefix {} (line {line}): an underlay is never an egress address",
                    server.underlay, egress[i].prefix
                ),
            ));
        }
    }
}

/// Reports every prefix that overlaps an earlier-starting one, naming it and its line.
/// `text(i)` formats prefix `i`; only called for the prefixes reported.
fn report_overlaps(
    map: &SourceMap<'_>,
    ranges: impl Iterator<Item = (u128, u128)>,
    spans: &[Range<usize>],
    text: impl Fn(usize) -> String,
    errors: &mut Vec<Diagnostic>,
) {
    let mut sorted: Vec<(u128, u128, usize)> =
        ranges.enumerate().map(|(i, (a, b))| (a, b, i)).collect();
    sorted.sort_unstable_by_key(|&(first, last, i)| (first, std::cmp::Reverse(last), i));
    // The range reaching furthest so far: any later range starting inside it overlaps it.
    let mut widest: Option<(u128, usize)> = None;
    for &(first, last, index) in &sorted {
        match widest {
            Some((widest_last, widest_index)) if first <= widest_last => {
                // Reported at whichever of the two comes later in the file.
                let (later, earlier) = if spans[index].start > spans[widest_index].start {
                    (index, widest_index)
                } else {
                    (widest_index, index)
                };
                let (line, _) = map.position(spans[earlier].start);
                errors.push(map.diagnostic(
                    spans[later].clone(),
                    format!(
                        "egress prefix {} overlaps {} (line {line})",
                        text(later),
                        text(earlier)
                    ),
                ));
                if last > widest_last {
                    widest = Some((last, index));
                }
            }
            _ => widest = Some((last, index)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_holder_is_small() {
        // A million holders in a customer-scale file: see `InText`.
        assert!(std::mem::size_of::<super::HolderSpec<'_>>() <= 24);
    }

    use super::*;

    const EXAMPLE: &str = include_str!("../examples/fleet.toml");

    #[test]
    fn a_fleet_file_is_cut_at_entry_headers_and_read_in_sections() {
        let (starts, counts) = section_starts(EXAMPLE, 1);
        assert!(starts.len() > 10, "{starts:?}");
        for &start in &starts[1..] {
            assert!(entry_header(EXAMPLE[start..].lines().next().unwrap()).is_some());
        }
        assert_eq!(counts.iter().sum::<usize>(), starts.len() - 1);
        let map = SourceMap::new("t.toml", EXAMPLE);
        let mut errors = Vec::new();
        let specs = read_sections(&map, EXAMPLE, &starts, counts, &mut errors)
            .expect("the example reads in sections, not by the fallback");
        assert_eq!(specs.servers.ok.len(), counts[2]);
        assert!(errors.is_empty());
        assert_eq!(
            parse_in_sections("t.toml", EXAMPLE, Some(1)),
            parse_in_sections("t.toml", EXAMPLE, None)
        );
        // One section at the first header, then one per `section_bytes`.
        assert_eq!(section_starts(EXAMPLE, usize::MAX).0.len(), 2);
    }

    #[test]
    fn names_written_without_escapes_are_borrowed_from_the_text() {
        let text = "a = \"plain\"\nb = \"esc\\u0061ped\"\nc = 'literal'\n";
        let source = Source { text, base: 0 };
        let at = |needle: &str| {
            let start = text.find(needle).unwrap();
            start..start + needle.len()
        };
        assert!(matches!(
            source.string(at("\"plain\""), "plain"),
            Cow::Borrowed("plain")
        ));
        assert!(matches!(
            source.string(at("'literal'"), "literal"),
            Cow::Borrowed(_)
        ));
        let escaped = source.string(at("\"esc\\u0061ped\""), "escaped");
        assert!(matches!(&escaped, Cow::Owned(s) if s == "escaped"));
    }
}
