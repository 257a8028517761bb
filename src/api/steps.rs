//! Harmony's step-by-step auth on the wire: domain steps to `AuthStep`, `NextStepRequest`
//! to an answer, and the StreamSteps stream (current step first, then every change; it
//! ends when the flow finishes or expires, or the node drains).
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::Status;

use crate::domain::flows::steps::{Answer, Step, Value, View};
use crate::domain::flows::{Flows, Subscription};
use crate::pb::protocol::auth::v1::{
    auth_step::{self, form::FormField},
    next_step_request::{self, form_fields},
    AuthStep, NextStepRequest, Session, StreamStepsResponse,
};

pub type StepStream = Pin<Box<dyn Stream<Item = Result<StreamStepsResponse, Status>> + Send>>;

/// How often a quiet stream checks that its flow still exists (flows expire on the
/// injected clock, which sends no notice).
const RECHECK: Duration = Duration::from_secs(1);

/// A domain step as the wire's `AuthStep`.
pub fn encode(step: Step) -> AuthStep {
    use auth_step::Step as S;
    let step_kind = match step.view {
        View::Choice { title, options } => S::Choice(auth_step::Choice {
            title: title.into(),
            options: options.into_iter().map(str::to_owned).collect(),
        }),
        View::Form { title, fields } => S::Form(auth_step::Form {
            title: title.into(),
            fields: fields
                .into_iter()
                .map(|(name, kind)| FormField {
                    name: name.into(),
                    r#type: kind.as_str().into(),
                })
                .collect(),
        }),
        View::Waiting { title, description } => S::Waiting(auth_step::Waiting {
            title: title.into(),
            description,
        }),
        View::Session { user_id, token } => S::Session(Session {
            user_id,
            session_token: token,
            guest_token: None,
        }),
    };
    AuthStep {
        fallback_url: step.fallback.unwrap_or_default(),
        can_go_back: step.can_go_back,
        step: Some(step_kind),
    }
}

/// A NextStep request's answer.
pub fn answer(req: NextStepRequest) -> Answer {
    match req.step {
        None => Answer::Nothing,
        Some(next_step_request::Step::Choice(c)) => Answer::Choice(c.choice),
        Some(next_step_request::Step::Form(f)) => Answer::Form(
            f.fields
                .into_iter()
                .map(|field| match field.field {
                    Some(form_fields::Field::Bytes(b)) => Value::Bytes(b),
                    Some(form_fields::Field::String(s)) => Value::Text(s),
                    Some(form_fields::Field::Number(n)) => Value::Number(n),
                    // An unset field reads as an empty string: the type check names it.
                    None => Value::Text(String::new()),
                })
                .collect(),
        ),
    }
}

/// The stream of flow `id` for one subscriber.
pub fn stream(flows: Arc<Flows>, id: String, sub: Subscription) -> StepStream {
    struct Cursor {
        flows: Arc<Flows>,
        id: String,
        sub: Subscription,
        last: Option<Step>,
        done: bool,
    }
    let start = Cursor {
        flows,
        id,
        last: None,
        done: false,
        sub,
    };
    Box::pin(futures_util::stream::unfold(start, |mut c| async move {
        if c.done {
            return None;
        }
        if c.last.is_none() {
            let first = c.sub.first.clone();
            c.last = Some(first.step.clone());
            c.done = first.done;
            return Some((
                Ok(StreamStepsResponse {
                    step: Some(encode(first.step)),
                }),
                c,
            ));
        }
        loop {
            if *c.sub.drain.borrow() {
                return None;
            }
            tokio::select! {
                changed = c.sub.changes.changed() => if changed.is_err() { return None },
                _ = c.sub.drain.changed() => return None,
                () = tokio::time::sleep(RECHECK) => {}
            }
            let now = match c.flows.current(&c.id).await {
                Ok(Some(now)) => now,
                Ok(None) => return None, // expired (or finished long ago)
                Err(_) => continue,      // unreadable for now: look again at the next tick
            };
            // A claim on a step changes the flow but not the step: only new steps go out.
            if c.last.as_ref() != Some(&now.step) {
                c.last = Some(now.step.clone());
                c.done = now.done;
                return Some((
                    Ok(StreamStepsResponse {
                        step: Some(encode(now.step)),
                    }),
                    c,
                ));
            }
        }
    }))
}
