//! A JSON object written straight into a string.
//!
//! Events are rendered by the million; building `serde_json::Value`s for
//! them costs thirty times more than appending their text, and the shapes
//! are fixed, so they are written directly.

use std::fmt::Write;

/// A JSON object being written; [`Object::finish`] closes it.
pub(super) struct Object {
    text: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        let mut text = String::with_capacity(512);
        text.push('{');
        Object { text }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        string(&mut self.text, key);
        self.text.push(':');
    }

    /// Adds a string member.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        string(&mut self.text, value);
        self
    }

    /// Adds a number (or any value whose `Display` is JSON: integers,
    /// finite floats, booleans).
    pub fn num(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// Adds a member whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.text.push_str(json);
        self
    }

    /// Adds an array of strings.
    pub fn strs<'v>(mut self, key: &str, values: impl IntoIterator<Item = &'v str>) -> Self {
        self.key(key);
        self.text.push('[');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            string(&mut self.text, value);
        }
        self.text.push(']');
        self
    }

    /// The object's JSON text.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Appends `value` as a JSON string.
fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes() {
        let inner = Object::new().num("n", 3).finish();
        let text = Object::new()
            .str("name", "O'Brien \"quoted\" \\ tab\t\u{1}")
            .num("ratio", 1.5)
            .num("ok", true)
            .raw("inner", &inner)
            .strs("list", ["a", "b"])
            .finish();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({
                "name": "O'Brien \"quoted\" \\ tab\t\u{1}", "ratio": 1.5, "ok": true,
                "inner": { "n": 3 }, "list": ["a", "b"],
            })
        );
    }
}
