//! Layered settings: defaults, then a `--config` file, then flags and
//! `--set key=value`, each a TOML table merged over the one before.

/// Merges `overlay` into `base`, tables key by key.
pub fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets a dotted key (`gbdt.learning_rate`) in `table`; the error says
/// what is wrong with the key.
pub fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return Err("empty key".into());
    };
    let mut at = table;
    for part in parts {
        let entry = at
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else {
            return Err(format!("{key}: {part} is not a table"));
        };
        at = inner;
    }
    if last.is_empty() {
        return Err(format!("{key}: empty key"));
    }
    at.insert(last.to_owned(), value);
    Ok(())
}

/// A `--set` value: TOML when it parses (`0.1`, `true`, `[1, -1]`, `"x"`),
/// otherwise the text as a string (`--set name=churn2`).
pub fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}
