//! The header of a `.npy` file: a Python dict literal with exactly the keys `descr`,
//! `fortran_order` and `shape`, read the way NumPy reads it (`ast.literal_eval`, then a
//! check of the keys): a key inside a string value is only text, a repeated key, an
//! unexpected key or trailing text is refused, and shape dimensions that do not fit a
//! `usize` are an error rather than a wrap.

/// The three entries of a header.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

/// A value of the header dict.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// A cursor over the header text.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Consumes `c` (after whitespace), or says what was found instead.
    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(format!("bad header: expected '{c}' at {:?}", snippet(self.rest))),
        }
    }

    /// Consumes `c` if it comes next (after whitespace).
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// A quoted string (either quote, no escapes: NumPy's headers have none).
    fn text(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = self.rest.chars().next().filter(|&c| c == '\'' || c == '"');
        let Some(quote) = quote else {
            return Err(format!(
                "bad header: expected a quoted string at {:?}",
                snippet(self.rest)
            ));
        };
        let body = &self.rest[1..];
        let end = body.find(quote).ok_or("bad header: a string is not closed")?;
        if body[..end].contains('\\') {
            return Err("bad header: escapes in strings are not supported".into());
        }
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    /// A value: a string, `True` / `False`, or a tuple of non-negative integers.
    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(Value::Bool(value));
            }
        }
        if self.eat('(') {
            return self.tuple().map(Value::Tuple);
        }
        self.text().map(Value::Text)
    }

    /// The items of a tuple after its `(`: integers separated by commas, then `)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        let mut items = Vec::new();
        while !self.eat(')') {
            self.skip_space();
            let digits: &str = &self.rest[..self.rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest.len())];
            if digits.is_empty() {
                return Err(format!("bad shape: expected a dimension at {:?}", snippet(self.rest)));
            }
            let dim = digits
                .parse::<usize>()
                .map_err(|_| format!("bad shape: the dimension {digits} is too large"))?;
            items.push(dim);
            self.rest = self.rest[digits.len()..]
                .strip_prefix('L')
                .unwrap_or(&self.rest[digits.len()..]);
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(items)
    }
}

/// At most 24 characters of `text`, for error messages.
fn snippet(text: &str) -> String {
    text.chars().take(24).collect()
}

/// Parses the header dict.
pub(super) fn parse(text: &str) -> Result<Header, String> {
    let mut cursor = Cursor { rest: text };
    cursor.expect('{')?;
    let mut entries: Vec<(String, Value)> = Vec::new();
    while !cursor.eat('}') {
        let key = cursor.text()?;
        cursor.expect(':')?;
        let value = cursor.value().map_err(|e| format!("{e} (the value of '{key}')"))?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(format!("bad header: the key '{key}' is repeated"));
        }
        entries.push((key, value));
        if !cursor.eat(',') {
            cursor.expect('}')?;
            break;
        }
    }
    cursor.skip_space();
    if !cursor.rest.is_empty() {
        return Err(format!(
            "bad header: unexpected text after the dict: {:?}",
            snippet(cursor.rest)
        ));
    }
    if let Some((key, _)) = entries
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "descr" | "fortran_order" | "shape"))
    {
        return Err(format!("bad header: unexpected key '{key}'"));
    }
    let take = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let descr = match take("descr") {
        Some(Value::Text(descr)) => descr,
        Some(_) => return Err("bad header: 'descr' is not a string".into()),
        None => return Err("the header has no 'descr'".into()),
    };
    let fortran_order = match take("fortran_order") {
        Some(Value::Bool(order)) => order,
        Some(_) => return Err("bad header: 'fortran_order' is not True or False".into()),
        None => return Err("the header has no 'fortran_order'".into()),
    };
    let shape = match take("shape") {
        Some(Value::Tuple(shape)) => shape,
        Some(_) => return Err("bad header: 'shape' is not a tuple".into()),
        None => return Err("the header has no 'shape'".into()),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_numpy_writes() {
        let header = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }     \n").expect("parses");
        assert_eq!(header.shape, vec![3, 4]);
        assert_eq!(header.descr, "<f4");
        assert!(!header.fortran_order);
        assert_eq!(
            parse("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }")
                .expect("1-d")
                .shape,
            vec![3]
        );
        assert_eq!(
            parse("{\"descr\": \"<f4\", \"fortran_order\": True, \"shape\": ()}")
                .expect("0-d")
                .shape,
            Vec::<usize>::new()
        );
        assert_eq!(
            parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 5L)}")
                .expect("py2")
                .shape,
            vec![2, 5]
        );
    }

    #[test]
    fn a_key_inside_a_string_is_only_text() {
        let header =
            parse("{'descr': \"<f4', 'shape': (9,)\", 'fortran_order': False, 'shape': (3,)}").expect("parses");
        assert_eq!(header.shape, vec![3]);
        assert_eq!(header.descr, "<f4', 'shape': (9,)");
    }

    #[test]
    fn refuses_what_numpy_refuses() {
        let cases = [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'shape': (9,)}",
                "repeated",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': \"'shape': (9,)\"}",
                "unexpected key 'x'",
            ),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "expected a dimension",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} trailing",
                "unexpected text",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}",
                "expected a quoted string",
            ),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': '3'}", "not a tuple"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,",
                "expected a dimension",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        // A stand-in for a fuzzer that runs on stable Rust in the suite: 20,000 headers with
        // bytes replaced, inserted or cut from NumPy's own; each parses or is refused.
        let seed = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
        let alphabet = b"{}()[]:,'\" 0123456789LTrueFalse-+.eE\\x";
        let mut next = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..20_000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (bytes.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse(text);
            }
        }
        for len in 0..seed.len() {
            assert!(parse(&seed[..len]).is_err(), "a header cut at {len} bytes is refused");
        }
    }
}
