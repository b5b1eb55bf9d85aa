//! The conversation's answers as Frame.io reads them: a message
//! `{"title", "description"}` or a form `{"title", "description", "fields": [...]}`.
//! Both API generations take the same JSON for the field types used here.

use serde_json::{Value, json};

use super::Reply;
use crate::flows::push::conversation::{Answer, Field, Response};

/// The HTTP reply for a conversation's response, with its jobs to queue.
pub(super) fn reply(response: Response) -> Reply {
    let mut reply = match response.answer {
        Answer::Message { title, description } => Reply::json(200, &json!({ "title": title, "description": description })),
        Answer::Form { title, description, fields } => {
            let fields: Vec<Value> = fields.iter().map(field).collect();
            Reply::json(200, &json!({ "title": title, "description": description, "fields": fields }))
        }
        Answer::Unavailable(why) => Reply::error(503, &why),
    };
    reply.enqueue = response.enqueue;
    reply
}

fn field(f: &Field) -> Value {
    match f {
        Field::Text { name, label, value } => json!({ "type": "text", "label": label, "name": name, "value": value }),
        Field::TextArea { name, label, value } => json!({ "type": "textarea", "label": label, "name": name, "value": value }),
        Field::Select { name, label, value, options } => {
            let options: Vec<Value> = options.iter().map(|(label, value)| json!({ "name": label, "value": value })).collect();
            json!({ "type": "select", "label": label, "name": name, "value": value, "options": options })
        }
    }
}
