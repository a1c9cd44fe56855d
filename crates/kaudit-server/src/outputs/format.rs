//! How an alert is written: Falco's JSON alert, and a one-line text form.

use serde_json::{Map, Value};

use super::OutputAlert;

/// Falco's JSON alert (`hostname`, `output`, `output_fields`, `priority`, `rule`, `source`,
/// `tags`, `time`), plus kaudit's `cluster` and `policy`, and `repeated` on deduplication
/// summaries. Keys are in alphabetical order, as Falco writes them.
pub fn falco_json(alert: &OutputAlert, hostname: &str) -> String {
    let time = kaudit_model::format_rfc3339_nanos(alert.time_ns);
    let mut object = Map::new();
    object.insert("cluster".into(), Value::String(alert.cluster.clone()));
    object.insert("hostname".into(), Value::String(hostname.to_owned()));
    object.insert("output".into(), Value::String(prefixed(alert, &time)));
    object.insert("output_fields".into(), Value::Object(alert.output_fields.clone()));
    object.insert("policy".into(), Value::String(alert.policy.clone()));
    object.insert(
        "priority".into(),
        Value::String(alert.priority.falco_name().to_owned()),
    );
    if alert.repeated > 0 {
        object.insert("repeated".into(), Value::from(alert.repeated));
    }
    object.insert("rule".into(), Value::String(alert.rule.clone()));
    object.insert("source".into(), Value::String("k8s_audit".into()));
    object.insert(
        "tags".into(),
        Value::Array(alert.tags.iter().cloned().map(Value::String).collect()),
    );
    object.insert("time".into(), Value::String(time));
    Value::Object(object).to_string()
}

/// `HH:MM:SS.nnnnnnnnn: Priority message (cluster=..., policy=...)`, with
/// `[repeated N times]` on deduplication summaries.
pub fn text_line(alert: &OutputAlert) -> String {
    let time = kaudit_model::format_rfc3339_nanos(alert.time_ns);
    let mut line = format!(
        "{} (cluster={}, policy={})",
        prefixed(alert, &time),
        alert.cluster,
        alert.policy
    );
    if alert.repeated > 0 {
        line.push_str(&format!(" [repeated {} more times]", alert.repeated));
    }
    line
}

/// Falco's text alert: the event's UTC time of day with nanoseconds, the priority, the message.
fn prefixed(alert: &OutputAlert, rfc3339: &str) -> String {
    let time_of_day = rfc3339.get(11..29).unwrap_or(rfc3339);
    format!("{time_of_day}: {} {}", alert.priority.falco_name(), alert.message)
}

#[cfg(test)]
mod tests {
    use kaudit_model::Priority;

    use super::*;

    #[test]
    fn falco_shape() {
        let mut fields = Map::new();
        fields.insert("ka.user.name".into(), Value::String("alice".into()));
        let alert = OutputAlert {
            time_ns: 1_714_558_272_223_456_789,
            rule: "Exec".into(),
            priority: Priority::Notice,
            policy: "notable-events".into(),
            message: "exec by alice".into(),
            output_fields: fields,
            tags: vec!["k8s".into()],
            cluster: "prod".into(),
            repeated: 0,
        };
        let json: Value = serde_json::from_str(&falco_json(&alert, "host1")).unwrap();
        assert_eq!(json["output"], "10:11:12.223456789: Notice exec by alice");
        assert_eq!(json["time"], "2024-05-01T10:11:12.223456789Z");
        assert_eq!(json["source"], "k8s_audit");
        assert_eq!(json["priority"], "Notice");
        assert_eq!(json["output_fields"]["ka.user.name"], "alice");
        assert!(json.get("repeated").is_none());
        assert_eq!(
            text_line(&alert),
            "10:11:12.223456789: Notice exec by alice (cluster=prod, policy=notable-events)"
        );
    }
}
