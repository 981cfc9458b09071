//! Every JSON document cachekeeper prints goes through here. Rust sums floats from `-0.0`
//! (IEEE's additive identity), so the rebuild seconds of nothing are `-0.0`, which serde
//! writes as `-0.0`: correct to a machine, alarming to a person and a trap for scripts that
//! compare strings. Here every number that is zero is written as `0`, whatever its sign.

use serde::Serialize;
use serde_json::Value;

/// `value` as JSON, pretty or on one line, with no negative zero in it.
///
/// # Errors
/// When `value` cannot be JSON (a map with keys that are not strings).
pub fn to_string<T: Serialize>(value: &T, pretty: bool) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(value)?;
    unsign_zeros(&mut v);
    if pretty {
        serde_json::to_string_pretty(&v)
    } else {
        serde_json::to_string(&v)
    }
}

fn unsign_zeros(v: &mut Value) {
    // A loop with a stack, not recursion: a deep document must not exhaust ours.
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => {
                *n = serde_json::Number::from_f64(0.0).expect("0 is finite");
            }
            Value::Array(a) => todo.extend(a.iter_mut()),
            Value::Object(o) => todo.extend(o.values_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_negative_zero_anywhere() {
        let nothing: f64 = std::iter::empty::<f64>().sum();
        assert!(
            nothing.is_sign_negative(),
            "the trap this module exists for"
        );
        let doc = serde_json::json!({"a": nothing, "b": [1.5, -0.0, {"c": -2.0}], "d": 0});
        let text = super::to_string(&doc, false).unwrap();
        assert_eq!(text, r#"{"a":0.0,"b":[1.5,0.0,{"c":-2.0}],"d":0}"#);
        assert!(!super::to_string(&doc, true).unwrap().contains("-0"));
    }
}
