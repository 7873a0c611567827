//! Command-line flag parsing with the rules of Go's `flag` package, which is
//! what operators of Vault-style CLIs expect: flags come before positional
//! arguments, `-name=value` or `-name value`, booleans as `-name` or
//! `-name=true|false`, and one or two leading dashes are interchangeable.
//! Durations, repeatable lists and repeatable `key=value` maps follow the
//! Vault CLI's own flag types.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::duration;

/// The type of value a flag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    String,
    Int,
    /// A Go duration (`90s`, `1h30m`), bare seconds, `Nd` days, or
    /// `system` (stored as -1s, which Vault reads as "reset to default").
    Duration,
    /// A string that may be given several times; values accumulate.
    List,
    /// A `key=value` pair that may be given several times.
    Map,
}

#[derive(Debug, Clone)]
struct Def {
    name: &'static str,
    kind: Kind,
    usage: &'static str,
    /// Set for aliases so values land under the canonical name.
    canonical: &'static str,
}

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Str(String),
    Int(i64),
    /// Nanoseconds, like Go's `time.Duration`.
    Duration(i64),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help` was given and no flag of that name is defined.
    Help,
    Undefined(String),
    MissingValue(String),
    BadBool {
        name: String,
        value: String,
    },
    BadInt {
        name: String,
        value: String,
    },
    /// A value that does not parse as the flag's type; `reason` is the
    /// parser's own words.
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
    BadSyntax(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => write!(f, "help requested"),
            FlagError::Undefined(name) => write!(f, "flag provided but not defined: -{name}"),
            FlagError::MissingValue(name) => write!(f, "flag needs an argument: -{name}"),
            FlagError::BadBool { name, value } => {
                write!(
                    f,
                    "invalid boolean value {value:?} for -{name}: parse error"
                )
            }
            FlagError::BadInt { name, value } => {
                write!(f, "invalid value {value:?} for flag -{name}: parse error")
            }
            FlagError::BadValue {
                name,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for flag -{name}: {reason}"),
            FlagError::BadSyntax(arg) => write!(f, "bad flag syntax: {arg}"),
        }
    }
}

impl std::error::Error for FlagError {}

/// The set of flags one command understands.
#[derive(Debug, Clone, Default)]
pub struct FlagSet {
    defs: Vec<Def>,
}

impl FlagSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bool(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::Bool, usage)
    }

    pub fn string(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::String, usage)
    }

    pub fn int(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::Int, usage)
    }

    pub fn duration(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::Duration, usage)
    }

    /// A flag that may be repeated, each use adding one value.
    pub fn list(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::List, usage)
    }

    /// A flag that may be repeated, each use adding one `key=value` pair.
    pub fn map(&mut self, name: &'static str, usage: &'static str) -> &mut Self {
        self.add(name, Kind::Map, usage)
    }

    /// Registers `alias` as another spelling of the already defined `name`.
    pub fn alias(&mut self, alias: &'static str, name: &'static str) -> &mut Self {
        if let Some(def) = self.defs.iter().find(|d| d.name == name).cloned() {
            self.defs.push(Def {
                name: alias,
                kind: def.kind,
                usage: "",
                canonical: def.canonical,
            });
        }
        self
    }

    fn add(&mut self, name: &'static str, kind: Kind, usage: &'static str) -> &mut Self {
        self.defs.push(Def {
            name,
            kind,
            usage,
            canonical: name,
        });
        self
    }

    fn lookup(&self, name: &str) -> Option<&Def> {
        self.defs.iter().find(|d| d.name == name)
    }

    /// A help listing of the flags, one paragraph per flag, aliases omitted.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for def in self.defs.iter().filter(|d| d.name == d.canonical) {
            let shape = match def.kind {
                Kind::Bool => String::new(),
                Kind::String => "=<string>".to_string(),
                Kind::Int => "=<int>".to_string(),
                Kind::Duration => "=<duration>".to_string(),
                Kind::List => "=<string>".to_string(),
                Kind::Map => "=<key=value>".to_string(),
            };
            out.push_str(&format!("  -{}{}\n", def.name, shape));
            if !def.usage.is_empty() {
                out.push_str(&format!("      {}\n\n", def.usage));
            }
        }
        out
    }

    /// Parses `args`, stopping at the first positional argument or `--`.
    pub fn parse(&self, args: &[String]) -> Result<Parsed, FlagError> {
        let mut parsed = Parsed::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let bytes = arg.as_bytes();
            if bytes.len() < 2 || bytes[0] != b'-' {
                break;
            }
            let mut dashes = 1;
            if bytes[1] == b'-' {
                dashes = 2;
                if bytes.len() == 2 {
                    i += 1;
                    break;
                }
            }
            let body = &arg[dashes..];
            if body.starts_with('-') || body.starts_with('=') {
                return Err(FlagError::BadSyntax(arg.clone()));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(def) = self.lookup(name) else {
                if name == "h" || name == "help" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Undefined(name.to_string()));
            };
            i += 1;
            let value = match def.kind {
                Kind::Bool => match inline {
                    None => Value::Bool(true),
                    Some(v) => Value::Bool(parse_bool(&v).ok_or_else(|| FlagError::BadBool {
                        name: name.to_string(),
                        value: v.clone(),
                    })?),
                },
                _ => {
                    let raw = match inline {
                        Some(v) => v,
                        None => {
                            let Some(next) = args.get(i) else {
                                return Err(FlagError::MissingValue(name.to_string()));
                            };
                            i += 1;
                            next.clone()
                        }
                    };
                    let previous = parsed.values.remove(def.canonical);
                    typed_value(def.kind, name, raw, previous)?
                }
            };
            parsed.values.insert(def.canonical.to_string(), value);
        }
        parsed.args = args[i..].to_vec();
        Ok(parsed)
    }
}

/// Converts the text of a non-boolean flag; repeatable kinds extend what
/// earlier uses of the flag collected.
fn typed_value(
    kind: Kind,
    name: &str,
    raw: String,
    previous: Option<Value>,
) -> Result<Value, FlagError> {
    let bad = |reason: String, value: &str| FlagError::BadValue {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    };
    Ok(match kind {
        Kind::Int => Value::Int(parse_int(&raw).ok_or_else(|| FlagError::BadInt {
            name: name.to_string(),
            value: raw.clone(),
        })?),
        Kind::Duration => {
            // Vault keeps accepting "system" to mean "use the default".
            let text = if raw == "system" { "-1" } else { raw.as_str() };
            Value::Duration(duration::parse(text).map_err(|e| bad(e, &raw))?)
        }
        Kind::List => {
            let mut items = match previous {
                Some(Value::List(items)) => items,
                _ => Vec::new(),
            };
            items.push(raw.trim().to_string());
            Value::List(items)
        }
        Kind::Map => {
            let Some((k, v)) = raw.split_once('=') else {
                return Err(bad(format!("missing = in KV pair: {raw:?}"), &raw));
            };
            let mut map = match previous {
                Some(Value::Map(map)) => map,
                _ => BTreeMap::new(),
            };
            map.insert(k.to_string(), v.to_string());
            Value::Map(map)
        }
        Kind::Bool | Kind::String => Value::Str(raw),
    })
}

/// Accepts the spellings Go's `strconv.ParseBool` does.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The outcome of a successful parse.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    values: HashMap<String, Value>,
    /// Everything from the first positional argument on.
    pub args: Vec<String>,
}

impl Parsed {
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// A duration flag in nanoseconds; negative means `system`.
    pub fn duration(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Duration(n)) => Some(*n),
            _ => None,
        }
    }

    /// Every value given to a repeatable flag, in order.
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    /// The pairs given to a repeatable `key=value` flag; a repeated key
    /// keeps its last value.
    pub fn map(&self, name: &str) -> BTreeMap<String, String> {
        match self.values.get(name) {
            Some(Value::Map(map)) => map.clone(),
            _ => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn set() -> FlagSet {
        let mut fs = FlagSet::new();
        fs.string("address", "")
            .bool("force", "")
            .alias("f", "force")
            .int("key-shares", "");
        fs
    }

    #[test]
    fn equals_and_separate_values() {
        let p = set()
            .parse(&args(&["-address=http://a", "--key-shares", "7", "path"]))
            .unwrap();
        assert_eq!(p.string("address"), Some("http://a"));
        assert_eq!(p.int("key-shares"), Some(7));
        assert_eq!(p.args, args(&["path"]));
    }

    #[test]
    fn booleans() {
        let p = set().parse(&args(&["-force"])).unwrap();
        assert!(p.bool("force"));
        let p = set().parse(&args(&["--force=false"])).unwrap();
        assert!(!p.bool("force"));
        assert!(p.is_set("force"));
        let p = set().parse(&args(&["-f", "x"])).unwrap();
        assert!(p.bool("force"));
        assert_eq!(p.args, args(&["x"]));
        // A boolean never consumes the next argument.
        let p = set().parse(&args(&["-force", "false"])).unwrap();
        assert!(p.bool("force"));
        assert_eq!(p.args, args(&["false"]));
        assert_eq!(
            set().parse(&args(&["-force=maybe"])).unwrap_err(),
            FlagError::BadBool {
                name: "force".into(),
                value: "maybe".into()
            }
        );
    }

    #[test]
    fn stops_at_first_positional() {
        let p = set()
            .parse(&args(&["secret/foo", "-force", "a=b"]))
            .unwrap();
        assert!(!p.bool("force"));
        assert_eq!(p.args, args(&["secret/foo", "-force", "a=b"]));
    }

    #[test]
    fn double_dash_and_single_dash() {
        let p = set().parse(&args(&["--", "-force"])).unwrap();
        assert!(!p.bool("force"));
        assert_eq!(p.args, args(&["-force"]));
        let p = set().parse(&args(&["-", "x"])).unwrap();
        assert_eq!(p.args, args(&["-", "x"]));
    }

    #[test]
    fn errors() {
        assert_eq!(
            set().parse(&args(&["-nope"])).unwrap_err(),
            FlagError::Undefined("nope".into())
        );
        assert_eq!(
            set().parse(&args(&["-address"])).unwrap_err(),
            FlagError::MissingValue("address".into())
        );
        assert_eq!(
            set().parse(&args(&["-key-shares=x"])).unwrap_err(),
            FlagError::BadInt {
                name: "key-shares".into(),
                value: "x".into()
            }
        );
        assert_eq!(
            set().parse(&args(&["---x"])).unwrap_err(),
            FlagError::BadSyntax("---x".into())
        );
        assert_eq!(set().parse(&args(&["-h"])).unwrap_err(), FlagError::Help);
        assert_eq!(
            set().parse(&args(&["--help"])).unwrap_err(),
            FlagError::Help
        );
        assert_eq!(
            FlagError::Undefined("nope".into()).to_string(),
            "flag provided but not defined: -nope"
        );
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn durations_lists_and_maps() {
        let mut fs = FlagSet::new();
        fs.duration("ttl", "")
            .list("policy", "")
            .map("meta", "")
            .alias("p", "policy");
        let p = fs
            .parse(&args(&[
                "-ttl=1h30m",
                "-policy=a",
                "-p",
                " b ",
                "-meta=k=v=w",
                "-meta",
                "x=",
                "path",
            ]))
            .unwrap();
        assert_eq!(p.duration("ttl"), Some(5400 * duration::SECOND));
        assert_eq!(p.list("policy"), vec!["a", "b"]);
        let meta: Vec<(String, String)> = p.map("meta").into_iter().collect();
        assert_eq!(
            meta,
            vec![
                ("k".to_string(), "v=w".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(p.args, args(&["path"]));
        assert!(p.list("missing").is_empty());

        let p = fs.parse(&args(&["-ttl=system"])).unwrap();
        assert_eq!(p.duration("ttl"), Some(-duration::SECOND));
        let p = fs.parse(&args(&["-ttl", "90"])).unwrap();
        assert_eq!(p.duration("ttl"), Some(90 * duration::SECOND));

        assert_eq!(
            fs.parse(&args(&["-ttl=soon"])).unwrap_err().to_string(),
            "invalid value \"soon\" for flag -ttl: time: invalid duration \"soon\""
        );
        assert_eq!(
            fs.parse(&args(&["-meta=novalue"])).unwrap_err().to_string(),
            "invalid value \"novalue\" for flag -meta: missing = in KV pair: \"novalue\""
        );
    }

    #[test]
    fn values_may_start_with_dash() {
        let p = set().parse(&args(&["-address", "-weird", "x"])).unwrap();
        assert_eq!(p.string("address"), Some("-weird"));
        assert_eq!(p.args, args(&["x"]));
    }
}
