//! A Harmony-style client that walks Hearth's step-by-step auth from the terminal: it asks
//! the node for the current step and renders it — a choice as numbered options, a form as
//! one prompt per field, a waiting step by streaming until it completes — until the node
//! hands out a session. The client knows no flow; the server drives: an account with a
//! second factor simply brings one more form (`second-factor`, one field of type `totp`,
//! answered with the app's code or a recovery code).
//!
//! Usage: harmony_login [URL]   (default http://127.0.0.1:7450)
//! Type `<` at any prompt to go back a step, where the step allows it. Passwords are read
//! without echo on a terminal, or as plain lines when stdin is piped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, IsTerminal, Write};

use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient,
    auth_step::Step,
    next_step_request::{self, form_fields::Field, FormFields},
    AuthStep, BeginAuthRequest, NextStepRequest, StepBackRequest, StreamStepsRequest,
};
use tonic::transport::Channel;

/// One line from the user (`None` at the end of input).
fn ask(prompt: &str, secret: bool) -> Option<String> {
    if secret && std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).ok();
    }
    print!("{prompt}");
    std::io::stdout().flush().ok()?;
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

/// The user's answer to `step`: `Ok(None)` to go back, `Err(())` at the end of input.
fn answer(step: &AuthStep) -> Result<Option<next_step_request::Step>, ()> {
    match &step.step {
        Some(Step::Choice(c)) => {
            println!("\n{}:", c.title);
            for (i, o) in c.options.iter().enumerate() {
                println!("  {}. {o}", i + 1);
            }
            let line = ask("> ", false).ok_or(())?;
            if line == "<" {
                return Ok(None);
            }
            let picked = match line.parse::<usize>() {
                Ok(i) if (1..=c.options.len()).contains(&i) => c.options[i - 1].clone(),
                _ => line,
            };
            Ok(Some(next_step_request::Step::Choice(
                next_step_request::Choice { choice: picked },
            )))
        }
        Some(Step::Form(f)) => {
            println!("\n{}:", f.title);
            let mut fields = Vec::new();
            for field in &f.fields {
                let secret = field.r#type.ends_with("password");
                let line =
                    ask(&format!("  {} ({}): ", field.name, field.r#type), secret).ok_or(())?;
                if line == "<" {
                    return Ok(None);
                }
                let value = match field.r#type.as_str() {
                    "password" | "new-password" => Field::Bytes(line.into_bytes()),
                    "number" => Field::Number(line.trim().parse().unwrap_or_default()),
                    _ => Field::String(line),
                };
                fields.push(FormFields { field: Some(value) });
            }
            Ok(Some(next_step_request::Step::Form(
                next_step_request::Form { fields },
            )))
        }
        _ => Err(()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:7450".into());
    let channel = Channel::from_shared(url)?.connect().await?;
    let mut client = AuthServiceClient::new(channel);
    let auth_id = client
        .begin_auth(BeginAuthRequest {
            for_guest_token: None,
        })
        .await?
        .into_inner()
        .auth_id;
    let next = |step| NextStepRequest {
        auth_id: auth_id.clone(),
        step,
    };
    let mut step = client.next_step(next(None)).await?.into_inner().step;
    loop {
        let Some(current) = step.clone() else {
            return Err("the node sent no step".into());
        };
        match &current.step {
            Some(Step::Session(s)) => {
                println!("\nsigned in as user {}", s.user_id);
                println!("session token: {}", s.session_token);
                return Ok(());
            }
            Some(Step::Waiting(w)) => {
                println!("\n{}: {}", w.title, w.description);
                let mut stream = client
                    .stream_steps(StreamStepsRequest {
                        auth_id: auth_id.clone(),
                    })
                    .await?
                    .into_inner();
                // The first message is the waiting step itself; the next one ends the wait.
                while let Some(msg) = stream.message().await? {
                    if msg.step.as_ref() != Some(&current) {
                        step = msg.step;
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        let Ok(reply) = answer(&current) else {
            return Err("no more input".into());
        };
        let result = match reply {
            None if current.can_go_back => client
                .step_back(StepBackRequest {
                    auth_id: auth_id.clone(),
                })
                .await
                .map(|r| r.into_inner().step),
            None => {
                println!("(this step cannot go back)");
                continue;
            }
            Some(answer) => client.next_step(next(Some(answer))).await.map(|r| {
                if let Some(note) = r.metadata().get("hearth-step-message") {
                    println!("note: {}", note.to_str().unwrap_or_default());
                }
                r.into_inner().step
            }),
        };
        match result {
            Ok(s) => step = s,
            // The node says what was wrong; the same step is asked again.
            Err(status) => println!("refused: {}", status.message()),
        }
    }
}
