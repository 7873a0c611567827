//! Vault's string templates (`username_template`): the Go `text/template` subset Vault's
//! `sdk/helper/template` accepts, with its functions.
//!
//! Supported: text and `{{ … }}` actions (with `{{-`/`-}}` trimming), pipelines (`a | b 3`),
//! parenthesised sub-pipelines, `.Field` lookups, string, raw-string and integer literals, and
//! the functions `printf`, `random`, `truncate`, `truncate_sha256`, `uppercase`, `lowercase`,
//! `replace`, `sha256`, `base64`, `hex`, `unix_time`, `unix_time_millis`, `timestamp` and
//! `uuid`. As in Go, the value of a pipeline stage is passed as the last argument of the next.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine;

use crate::password::random_base62;

/// A template that cannot be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn error(message: impl Into<String>) -> TemplateError {
    TemplateError(message.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
}

type Pipeline = Vec<Command>;

#[derive(Debug, Clone, PartialEq)]
struct Command {
    operands: Vec<Operand>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(String),
    Str(String),
    Int(i64),
    Ident(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
}

impl Val {
    fn render(&self) -> String {
        match self {
            Val::Str(text) => text.clone(),
            Val::Int(n) => n.to_string(),
        }
    }

    fn as_int(&self, function: &str) -> Result<i64, TemplateError> {
        match self {
            Val::Int(n) => Ok(*n),
            Val::Str(text) => text
                .parse()
                .map_err(|_| error(format!("{function}: expected an integer, got {text:?}"))),
        }
    }
}

/// A parsed template, ready to render many times.
#[derive(Debug, Clone, PartialEq)]
pub struct StringTemplate {
    nodes: Vec<Node>,
}

impl StringTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Err(error("missing template"));
        }
        let mut nodes = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut literal = &rest[..open];
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\t") {
                literal = literal.trim_end();
                inner_start += 1;
            }
            let close = rest[inner_start..]
                .find("}}")
                .map(|at| at + inner_start)
                .ok_or_else(|| error("unable to parse template: unclosed action"))?;
            let mut inner = &rest[inner_start..close];
            let mut trim_after = false;
            if inner.ends_with(" -") || inner.ends_with("\t-") {
                inner = &inner[..inner.len() - 1];
                trim_after = true;
            }
            if !literal.is_empty() {
                nodes.push(Node::Text(literal.to_owned()));
            }
            let mut parser = Parser::new(inner);
            let pipeline = parser.pipeline()?;
            parser.skip_space();
            if !parser.at_end() {
                return Err(error(format!(
                    "unable to parse template: unexpected {:?}",
                    parser.remaining()
                )));
            }
            nodes.push(Node::Action(pipeline));
            rest = &rest[close + 2..];
            if trim_after {
                rest = rest.trim_start();
            }
        }
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_owned()));
        }
        Ok(StringTemplate { nodes })
    }

    /// Renders with `fields` as the template's data (`.DisplayName` → `fields["DisplayName"]`).
    pub fn render(&self, fields: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(pipeline) => out.push_str(&eval_pipeline(pipeline, fields)?.render()),
            }
        }
        Ok(out)
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    source: &'a str,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str) -> Self {
        Parser {
            chars: source.chars().collect(),
            at: 0,
            source,
        }
    }

    fn at_end(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn remaining(&self) -> String {
        self.chars[self.at.min(self.chars.len())..].iter().collect()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn pipeline(&mut self) -> Result<Pipeline, TemplateError> {
        let mut commands = vec![self.command()?];
        loop {
            self.skip_space();
            if self.peek() == Some('|') {
                self.at += 1;
                commands.push(self.command()?);
            } else {
                return Ok(commands);
            }
        }
    }

    fn command(&mut self) -> Result<Command, TemplateError> {
        let mut operands = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None | Some('|') | Some(')') => break,
                Some(_) => operands.push(self.operand()?),
            }
        }
        if operands.is_empty() {
            return Err(error(format!(
                "unable to parse template: missing command in {:?}",
                self.source
            )));
        }
        Ok(Command { operands })
    }

    fn operand(&mut self) -> Result<Operand, TemplateError> {
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let pipeline = self.pipeline()?;
                self.skip_space();
                if self.peek() != Some(')') {
                    return Err(error("unable to parse template: unclosed parenthesis"));
                }
                self.at += 1;
                Ok(Operand::Sub(pipeline))
            }
            Some('"') => self.quoted().map(Operand::Str),
            Some('`') => {
                self.at += 1;
                let start = self.at;
                while self.peek().is_some_and(|c| c != '`') {
                    self.at += 1;
                }
                if self.at_end() {
                    return Err(error("unable to parse template: unterminated raw string"));
                }
                let text = self.chars[start..self.at].iter().collect();
                self.at += 1;
                Ok(Operand::Str(text))
            }
            Some('.') => {
                self.at += 1;
                let name = self.word();
                Ok(Operand::Field(name))
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.at;
                self.at += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                text.parse()
                    .map(Operand::Int)
                    .map_err(|_| error(format!("unable to parse template: bad number {text:?}")))
            }
            Some(c) if c.is_alphabetic() || c == '_' => Ok(Operand::Ident(self.word())),
            Some(c) => Err(error(format!("unable to parse template: unexpected {c:?}"))),
            None => Err(error("unable to parse template: unexpected end")),
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn quoted(&mut self) -> Result<String, TemplateError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(error("unable to parse template: unterminated string")),
                Some('"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.at += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| error("unable to parse template: unterminated string"))?;
                    out.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                    self.at += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }
}

fn eval_pipeline(
    pipeline: &Pipeline,
    fields: &BTreeMap<String, String>,
) -> Result<Val, TemplateError> {
    let mut previous: Option<Val> = None;
    for command in pipeline {
        previous = Some(eval_command(command, previous.take(), fields)?);
    }
    previous.ok_or_else(|| error("empty pipeline"))
}

fn eval_command(
    command: &Command,
    piped: Option<Val>,
    fields: &BTreeMap<String, String>,
) -> Result<Val, TemplateError> {
    let (head, rest) = command
        .operands
        .split_first()
        .ok_or_else(|| error("empty command"))?;
    match head {
        Operand::Ident(function) => {
            let mut args = rest
                .iter()
                .map(|operand| eval_operand(operand, fields))
                .collect::<Result<Vec<_>, _>>()?;
            args.extend(piped);
            call(function, args)
        }
        operand => {
            if !rest.is_empty() || piped.is_some() {
                return Err(error("can't give arguments to a non-function"));
            }
            eval_operand(operand, fields)
        }
    }
}

fn eval_operand(
    operand: &Operand,
    fields: &BTreeMap<String, String>,
) -> Result<Val, TemplateError> {
    match operand {
        Operand::Field(name) => fields
            .get(name)
            .map(|value| Val::Str(value.clone()))
            .ok_or_else(|| {
                error(format!(
                    "unable to apply template: can't evaluate field {name}"
                ))
            }),
        Operand::Str(text) => Ok(Val::Str(text.clone())),
        Operand::Int(n) => Ok(Val::Int(*n)),
        Operand::Ident(function) => call(function, Vec::new()),
        Operand::Sub(pipeline) => eval_pipeline(pipeline, fields),
    }
}

fn arity(function: &str, args: &[Val], wanted: usize) -> Result<(), TemplateError> {
    if args.len() == wanted {
        Ok(())
    } else {
        Err(error(format!(
            "unable to apply template: wrong number of args for {function}: want {wanted} got {}",
            args.len()
        )))
    }
}

fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn call(function: &str, args: Vec<Val>) -> Result<Val, TemplateError> {
    let text = |index: usize| args.get(index).map(Val::render).unwrap_or_default();
    match function {
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or_else(|| error("unable to apply template: printf needs a format"))?;
            Ok(Val::Str(printf(&format.render(), rest)))
        }
        "random" => {
            arity(function, &args, 1)?;
            let length = args[0].as_int(function)?;
            let length = usize::try_from(length)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| error("unable to apply template: random length must be > 0"))?;
            Ok(Val::Str(random_base62(length)))
        }
        "truncate" => {
            arity(function, &args, 2)?;
            let max = args[0].as_int(function)?;
            if max <= 0 {
                return Err(error(format!(
                    "unable to apply template: max length must be > 0 but was {max}"
                )));
            }
            Ok(Val::Str(truncate_bytes(&text(1), max as usize).to_owned()))
        }
        "truncate_sha256" => {
            arity(function, &args, 2)?;
            let max = args[0].as_int(function)?;
            if max <= 8 {
                return Err(error(format!(
                    "unable to apply template: max length must be > 8 but was {max}"
                )));
            }
            let value = text(1);
            let max = max as usize;
            if value.len() <= max {
                return Ok(Val::Str(value));
            }
            let keep = truncate_bytes(&value, max - 8);
            let hash = sha256_hex(&value[keep.len()..]);
            Ok(Val::Str(format!("{keep}{}", &hash[..8])))
        }
        "uppercase" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(text(0).to_uppercase()))
        }
        "lowercase" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(text(0).to_lowercase()))
        }
        "replace" => {
            arity(function, &args, 3)?;
            Ok(Val::Str(text(2).replace(&text(0), &text(1))))
        }
        "sha256" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(sha256_hex(&text(0))))
        }
        "base64" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(
                base64::engine::general_purpose::STANDARD.encode(text(0)),
            ))
        }
        "hex" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(hex_encode(text(0).as_bytes())))
        }
        "unix_time" => {
            arity(function, &args, 0)?;
            Ok(Val::Str(unix_now().as_secs().to_string()))
        }
        "unix_time_millis" => {
            arity(function, &args, 0)?;
            Ok(Val::Str(unix_now().as_millis().to_string()))
        }
        "timestamp" => {
            arity(function, &args, 1)?;
            Ok(Val::Str(go_time_format(&text(0), unix_now().as_secs())))
        }
        "uuid" => {
            arity(function, &args, 0)?;
            Ok(Val::Str(crate::password::random_uuid()))
        }
        other => Err(error(format!(
            "unable to parse template: function {other:?} not defined"
        ))),
    }
}

/// The longest prefix of at most `max` bytes that ends on a character boundary (Go slices
/// bytes; cutting inside a character would make the result invalid UTF-8).
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn sha256_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    hex_encode(digest.as_ref())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s`, `%v`, `%d`, `%q` and `%%`.
fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => match args.next() {
                Some(value) if verb == 'q' => out.push_str(&format!("{:?}", value.render())),
                Some(value) => out.push_str(&value.render()),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

/// Formats a UTC time with a Go reference layout (`2006-01-02T15:04:05Z07:00`), covering the
/// layout elements timestamps in usernames use.
fn go_time_format(layout: &str, unix: u64) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(unix as i64) else {
        return String::new();
    };
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let month = usize::from(u8::from(time.month())) - 1;
    let weekday = usize::from(time.weekday().number_days_from_monday());
    let hour12 = match time.hour() % 12 {
        0 => 12,
        h => h,
    };
    let tokens: [(&str, String); 22] = [
        ("January", MONTHS[month].to_owned()),
        ("Monday", DAYS[weekday].to_owned()),
        ("Z07:00", "Z".to_owned()),
        ("-07:00", "+00:00".to_owned()),
        ("-0700", "+0000".to_owned()),
        ("2006", format!("{:04}", time.year())),
        ("Jan", MONTHS[month][..3].to_owned()),
        ("Mon", DAYS[weekday][..3].to_owned()),
        ("MST", "UTC".to_owned()),
        ("002", format!("{:03}", time.ordinal())),
        ("01", format!("{:02}", month + 1)),
        ("02", format!("{:02}", time.day())),
        ("03", format!("{hour12:02}")),
        ("04", format!("{:02}", time.minute())),
        ("05", format!("{:02}", time.second())),
        ("06", format!("{:02}", time.year() % 100)),
        ("15", format!("{:02}", time.hour())),
        ("PM", if time.hour() >= 12 { "PM" } else { "AM" }.to_owned()),
        ("_2", format!("{:>2}", time.day())),
        ("1", format!("{}", month + 1)),
        ("2", format!("{}", time.day())),
        ("3", format!("{hour12}")),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (token, value) in &tokens {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(display: &str, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("DisplayName".to_owned(), display.to_owned()),
            ("RoleName".to_owned(), role.to_owned()),
        ])
    }

    fn render(template: &str, display: &str, role: &str) -> String {
        StringTemplate::parse(template)
            .unwrap()
            .render(&fields(display, role))
            .unwrap()
    }

    #[test]
    fn vaults_postgres_default() {
        let out = render(
            r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#,
            "token",
            "myrolename-is-long",
        );
        let parts: Vec<&str> = out.split('-').collect();
        assert_eq!(parts[0], "v");
        assert_eq!(parts[1], "token");
        assert_eq!(parts[2], "myrolena");
        assert_eq!(parts[3].len(), 20);
        assert!(parts[4].parse::<u64>().unwrap() > 1_600_000_000);
    }

    #[test]
    fn truncation_limits() {
        let out = render(
            r#"{{ printf "v-%s-%s-%s" (.RoleName | truncate 4) (random 20) | truncate 16 }}"#,
            "token",
            "readonly",
        );
        assert_eq!(out.len(), 16);
        assert!(out.starts_with("v-read-"));
    }

    #[test]
    fn string_functions() {
        assert_eq!(render("{{.DisplayName | uppercase}}", "ab-c", "r"), "AB-C");
        assert_eq!(
            render("{{ .DisplayName | replace \"-\" \"_\" }}", "a-b-c", "r"),
            "a_b_c"
        );
        assert_eq!(render("{{.RoleName | lowercase}}", "x", "RoLe"), "role");
        assert_eq!(render("{{ .RoleName | base64 }}", "x", "abc"), "YWJj");
        assert_eq!(
            render("{{ .RoleName | sha256 }}", "x", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(render("{{ .RoleName | hex }}", "x", "ab"), "6162");
        assert_eq!(
            render("pre-{{- \" x \" -}} -post", "x", "y"),
            "pre- x -post"
        );
        let hashed = render(
            "{{ .RoleName | truncate_sha256 10 }}",
            "x",
            "abcdefghijklmnop",
        );
        assert_eq!(hashed.len(), 10);
        assert!(hashed.starts_with("ab"));
        assert_eq!(render("{{ uuid }}", "x", "y").len(), 36);
        assert_eq!(render("{{ timestamp \"2006\" }}", "x", "y").len(), 4);
        assert!(render("{{ unix_time_millis }}", "x", "y").len() >= 13);
    }

    #[test]
    fn go_layouts() {
        // 2021-02-25T23:13:56Z, a Thursday.
        assert_eq!(
            go_time_format("2006-01-02 15:04:05-0700 Mon Jan", 1_614_294_836),
            "2021-02-25 23:13:56+0000 Thu Feb"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(StringTemplate::parse("").is_err());
        assert!(StringTemplate::parse("{{ .x ").is_err());
        let bad_function = StringTemplate::parse("{{ nope }}")
            .unwrap()
            .render(&fields("a", "b"));
        assert!(bad_function.unwrap_err().0.contains("not defined"));
        let bad_field = StringTemplate::parse("{{ .Missing }}")
            .unwrap()
            .render(&fields("a", "b"));
        assert!(bad_field.unwrap_err().0.contains("Missing"));
        let bad_truncate = StringTemplate::parse("{{ .RoleName | truncate 0 }}")
            .unwrap()
            .render(&fields("a", "b"));
        assert!(bad_truncate.is_err());
    }
}
