//! The steps of a flow and what a client may answer to each: pure, no I/O. A step is one of
//! [`At`]; [`At::view`] is what the client renders, and [`read_form`] checks a form answer
//! against the step's fields (count, order, type, e-mail syntax) before any service runs.
use zeroize::Zeroizing;

use super::super::error::Reason;
use super::super::validate::canonical_email;
use super::super::DomainError;

/// A form field's type, as Harmony clients know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// An e-mail address (a string).
    Email,
    /// An existing password (bytes).
    Password,
    /// A password being chosen (bytes).
    NewPassword,
    /// Free text (a string).
    Text,
    /// An integer (int64).
    Number,
    /// A code of the second factor: a TOTP code or a recovery code (a string).
    Totp,
}

impl FieldType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Email => "email",
            FieldType::Password => "password",
            FieldType::NewPassword => "new-password",
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Totp => "totp",
        }
    }

    fn wire_kind(self) -> &'static str {
        match self {
            FieldType::Password | FieldType::NewPassword => "bytes",
            FieldType::Email | FieldType::Text | FieldType::Totp => "string",
            FieldType::Number => "number",
        }
    }
}

/// What a client renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Pick one option.
    Choice {
        /// The step's name.
        title: &'static str,
        options: Vec<&'static str>,
    },
    /// Fill in fields, in this order.
    Form {
        /// The step's name.
        title: &'static str,
        /// (name, type) of each field.
        fields: Vec<(&'static str, FieldType)>,
    },
    /// Wait: the step completes by itself.
    Waiting {
        /// The step's name.
        title: &'static str,
        /// What is awaited.
        description: String,
    },
    /// Done: a session.
    Session {
        user_id: u64,
        /// The session token.
        token: String,
    },
}

/// A step as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to render.
    pub view: View,
    /// Whether StepBack may go back from here.
    pub can_go_back: bool,
    /// A note for the client about how it got here (e.g. "password changed").
    pub message: Option<String>,
    /// The path of the node's page that completes this step for a client that cannot
    /// (a passkey): Harmony's `fallback_url`, made absolute by the transport.
    pub fallback: Option<String>,
}

/// One answered form field, as the client typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// bytes
    Bytes(Vec<u8>),
    /// string
    Text(String),
    /// int64
    Number(i64),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Bytes(_) => "bytes",
            Value::Text(_) => "string",
            Value::Number(_) => "number",
        }
    }
}

/// A client's answer to the current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Neither choice nor form: "what is the current step?"
    Nothing,
    Choice(String),
    /// A filled-in form.
    Form(Vec<Value>),
}

/// Where a flow stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum At {
    /// Choice `initial`: login, register, other-options.
    Initial,
    /// Form `login`.
    Login,
    /// Form `register` (with `invite` when registration is by invite).
    Register,
    /// Form `second-factor`: the account's TOTP code (or a recovery code), after a right
    /// password.
    SecondFactor {
        /// What the password proved.
        proof: crate::domain::accounts::PasswordProof,
        /// When the account has a passkey: the id of the page that finishes this step with
        /// it (`fallback`), which names the flow without giving it away.
        handoff: Option<String>,
    },
    /// Choice `other-options`: reset-password.
    OtherOptions,
    /// Form `reset-password`: the address to mail a code to.
    ResetEmail,
    /// Form `reset-password-code`: the mailed code and a new password.
    ResetCode {
        /// The address the code went to.
        email: String,
    },
    /// Form `verify-email`: the mailed code (empty: wait for the link instead).
    VerifyCode {
        /// The new account.
        user_id: u64,
        email: String,
    },
    /// Waiting `verify-email`: the link in the mail completes the step.
    VerifyWait {
        /// The new account.
        user_id: u64,
        email: String,
    },
    /// Session: the flow is done.
    Done { user_id: u64 },
}

/// Options of the `initial` choice.
pub const INITIAL: [&str; 3] = ["login", "register", "other-options"];
/// Options of the `other-options` choice.
pub const OTHER: [&str; 1] = ["reset-password"];

impl At {
    /// The step a client sees here (`invite`: registration needs an invite code; `token`:
    /// the session token of a finished flow).
    pub fn view(&self, invite: bool, token: Option<&str>) -> Step {
        use FieldType::*;
        let (view, can_go_back) = match self {
            At::Initial => (
                View::Choice {
                    title: "initial",
                    options: INITIAL.to_vec(),
                },
                false,
            ),
            At::Login => (
                View::Form {
                    title: "login",
                    fields: vec![("email", Email), ("password", Password)],
                },
                true,
            ),
            At::Register => {
                let mut fields = vec![
                    ("email", Email),
                    ("username", Text),
                    ("password", NewPassword),
                ];
                if invite {
                    fields.push(("invite", Text));
                }
                (
                    View::Form {
                        title: "register",
                        fields,
                    },
                    true,
                )
            }
            At::SecondFactor { proof, .. } if !proof.totp => (
                View::Waiting {
                    title: "second-factor",
                    description: "confirm with your passkey on the page at fallback_url; this step then completes by itself".into(),
                },
                true,
            ),
            At::SecondFactor { .. } => (
                View::Form {
                    title: "second-factor",
                    fields: vec![("totp", Totp)],
                },
                true,
            ),
            At::OtherOptions => (
                View::Choice {
                    title: "other-options",
                    options: OTHER.to_vec(),
                },
                true,
            ),
            At::ResetEmail => (
                View::Form {
                    title: "reset-password",
                    fields: vec![("email", Email)],
                },
                true,
            ),
            At::ResetCode { .. } => (
                View::Form {
                    title: "reset-password-code",
                    fields: vec![("code", Text), ("new-password", NewPassword)],
                },
                true,
            ),
            At::VerifyCode { .. } => (
                View::Form {
                    title: "verify-email",
                    fields: vec![("code", Text)],
                },
                false,
            ),
            At::VerifyWait { email, .. } => (
                View::Waiting {
                    title: "verify-email",
                    description: format!(
                        "open the link in the mail sent to {email}; this step then completes by itself"
                    ),
                },
                true,
            ),
            At::Done { user_id } => (
                View::Session {
                    user_id: *user_id,
                    token: token.unwrap_or_default().to_owned(),
                },
                false,
            ),
        };
        let fallback = match self {
            At::SecondFactor {
                handoff: Some(h), ..
            } => Some(format!("/sign-in/passkey?handoff={h}")),
            _ => None,
        };
        Step {
            view,
            can_go_back,
            message: None,
            fallback,
        }
    }
}

/// A checked form answer: its values by field name.
#[derive(Debug, Default)]
pub struct Filled {
    texts: Vec<(&'static str, String)>,
    secrets: Vec<(&'static str, Zeroizing<String>)>,
}

impl Filled {
    /// The text (or canonical e-mail) of field `name`.
    pub fn text(&self, name: &str) -> String {
        self.texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The password of field `name`.
    pub fn secret(&self, name: &str) -> Zeroizing<String> {
        self.secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Checks `values` against the form `title` with `fields`: the count, then each field's
/// type in order, then e-mail syntax. Each mistake names the field.
pub fn read_form(
    title: &str,
    fields: &[(&'static str, FieldType)],
    values: Vec<Value>,
) -> Result<Filled, DomainError> {
    if values.len() != fields.len() {
        let expected: Vec<String> = fields
            .iter()
            .map(|(n, t)| format!("{n} ({})", t.wire_kind()))
            .collect();
        return Err(DomainError::invalid(
            "form.fields",
            format!(
                "the step `{title}` takes {} field{}, in this order: {}; got {}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                expected.join(", "),
                values.len()
            ),
        ));
    }
    let mut filled = Filled::default();
    for (&(name, kind), value) in fields.iter().zip(sdk_order(fields, values)) {
        let wrong = |got: &str| {
            DomainError::invalid(
                name,
                format!(
                    "must be {} for a `{}` field, not {got}",
                    kind.wire_kind(),
                    kind.as_str()
                ),
            )
        };
        match (kind, value) {
            (FieldType::Email, Value::Text(t)) => {
                filled.texts.push((name, canonical_email(name, &t)?));
            }
            (FieldType::Text | FieldType::Totp, Value::Text(t)) => filled.texts.push((name, t)),
            (FieldType::Number, Value::Number(n)) => filled.texts.push((name, n.to_string())),
            (FieldType::Password | FieldType::NewPassword, Value::Bytes(b)) => {
                let text = String::from_utf8(b)
                    .map_err(|_| DomainError::invalid(name, "must be UTF-8 text"))?;
                filled.secrets.push((name, Zeroizing::new(text)));
            }
            (_, other) => return Err(wrong(other.kind())),
        }
    }
    Ok(filled)
}

/// Harmony's SDK (`register_form`) sends the username before the e-mail address, against
/// the order the register step names. Accepted when it is unambiguous: the form asks for an
/// e-mail then a text, and only the second value is an e-mail address.
fn sdk_order(fields: &[(&'static str, FieldType)], mut values: Vec<Value>) -> Vec<Value> {
    let is_email = |v: &Value| matches!(v, Value::Text(t) if canonical_email("email", t).is_ok());
    if let ([(_, FieldType::Email), (_, FieldType::Text), ..], [first, second, ..]) =
        (fields, &values[..])
    {
        if !is_email(first) && is_email(second) && matches!(first, Value::Text(_)) {
            values.swap(0, 1);
        }
    }
    values
}

/// The refusal for a choice the step does not offer.
pub fn not_offered(title: &str, options: &[&str], got: &str) -> DomainError {
    DomainError::invalid(
        "choice.choice",
        format!(
            "`{}` is not an option of `{title}`; the options are {}",
            super::super::validate::printable(got, 40),
            options.join(", ")
        ),
    )
}

/// The refusal for an answer of the wrong shape (a form to a choice, …).
pub fn wrong_answer(step: &View) -> DomainError {
    let (field, what) = match step {
        View::Choice { title, .. } => ("choice", format!("the step `{title}` is a choice: send `choice`")),
        View::Form { title, .. } => ("form", format!("the step `{title}` is a form: send `form`")),
        View::Waiting { title, .. } => (
            "step",
            format!("the step `{title}` is waiting and takes no answer; StepBack goes back, StreamSteps tells when it completes"),
        ),
        View::Session { .. } => ("step", "the flow is done; it takes no answer".to_owned()),
    };
    DomainError::invalid_because(field, Reason::FieldInvalid, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Vec<(&'static str, FieldType)> {
        vec![
            ("email", FieldType::Email),
            ("password", FieldType::Password),
        ]
    }

    #[test]
    fn forms_are_checked_for_count_order_type_and_syntax() {
        let ok = read_form(
            "login",
            &login(),
            vec![
                Value::Text("A@Example.org".into()),
                Value::Bytes(b"pw".to_vec()),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.text("email"), "a@example.org");
        assert_eq!(ok.secret("password").as_str(), "pw");

        let e = read_form("login", &login(), vec![Value::Text("a@example.org".into())])
            .expect_err("one field short");
        assert!(
            e.message.contains("takes 2 fields") && e.message.contains("got 1"),
            "{e}"
        );
        let e = read_form(
            "login",
            &login(),
            vec![
                Value::Bytes(b"pw".to_vec()),
                Value::Text("a@example.org".into()),
            ],
        )
        .expect_err("swapped");
        assert_eq!(e.field, Some("email"));
        let e = read_form(
            "login",
            &login(),
            vec![
                Value::Text("a@example.org".into()),
                Value::Text("pw".into()),
            ],
        )
        .expect_err("a password as a string");
        assert_eq!(e.field, Some("password"));
        assert!(e.message.contains("must be bytes"), "{e}");
        let e = read_form(
            "login",
            &login(),
            vec![
                Value::Text("not an address".into()),
                Value::Bytes(b"pw".to_vec()),
            ],
        )
        .expect_err("syntax");
        assert_eq!(e.field, Some("email"));
    }

    #[test]
    fn the_register_form_takes_the_sdks_order_only_when_unambiguous() {
        let fields = [
            ("email", FieldType::Email),
            ("username", FieldType::Text),
            ("password", FieldType::NewPassword),
        ];
        let form = |a: &str, b: &str| {
            read_form(
                "register",
                &fields,
                vec![
                    Value::Text(a.into()),
                    Value::Text(b.into()),
                    Value::Bytes(b"pw".to_vec()),
                ],
            )
        };
        for (a, b) in [("a@example.org", "sdkuser"), ("sdkuser", "a@example.org")] {
            let ok = form(a, b).unwrap_or_else(|e| panic!("{a}, {b}: {e}"));
            assert_eq!(ok.text("email"), "a@example.org");
            assert_eq!(ok.text("username"), "sdkuser");
        }
        // Two addresses: the named order holds.
        let ok = form("a@example.org", "b@example.org").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.text("username"), "b@example.org");
        // Neither: refused, naming the e-mail field.
        let e = form("sdkuser", "other").expect_err("no address");
        assert_eq!(e.field, Some("email"));
    }

    #[test]
    fn steps_say_where_back_is_allowed() {
        assert!(!At::Initial.view(false, None).can_go_back);
        assert!(At::Login.view(false, None).can_go_back);
        let register = At::Register.view(true, None);
        assert!(matches!(register.view, View::Form { fields, .. } if fields.len() == 4));
    }
}
