//! TEMPORARY stub, replaced by the full RFC 6570 module.
#![allow(missing_docs)]
use serde_json::Value;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate {
    src: String,
}
pub trait Vars {
    fn get(&self, name: &str) -> Option<&Value>;
}
impl<K: AsRef<str>> Vars for [(K, Value)] {
    fn get(&self, name: &str) -> Option<&Value> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v)
    }
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL template")]
pub struct TemplateError;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing parameter `{0}`")]
pub struct ExpandError(String);
impl UrlTemplate {
    pub fn parse(t: &str) -> Result<Self, TemplateError> {
        Ok(UrlTemplate { src: t.to_owned() })
    }
    pub fn as_str(&self) -> &str {
        &self.src
    }
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.src
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next())
    }
    pub fn expand(&self, vars: &dyn Vars, out: &mut String) -> Result<(), ExpandError> {
        let mut rest = self.src.as_str();
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let j = rest[i..].find('}').unwrap() + i;
            let name = &rest[i + 1..j];
            let v = vars.get(name).ok_or_else(|| ExpandError(name.to_owned()))?;
            match v {
                Value::String(s) => out.push_str(s),
                o => out.push_str(&o.to_string()),
            }
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        Ok(())
    }
}
impl<K: AsRef<str>> Vars for Vec<(K, Value)> {
    fn get(&self, name: &str) -> Option<&Value> {
        <[(K, Value)] as Vars>::get(self.as_slice(), name)
    }
}
