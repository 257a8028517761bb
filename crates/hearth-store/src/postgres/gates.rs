//! The larger atomic operations on PostgreSQL: the sign-in gate's rows, code
//! issuance, snowflake worker leases and guarded session inserts. Each is one statement, or
//! locks the rows it reads, so it holds in a serializable transaction and in a row-locked
//! one alike (see `mod.rs`).
use super::rows;
use super::tx::Tx;
use crate::domain::model::{CodeRecord, Session, ThrottleRow, User};
use crate::domain::state::store::{Ended, Later, SignInHeld, StoreError};

const ACCOUNT: &str = "*";
const WORKERS: i64 = 1024;

fn i(v: u64) -> i64 {
    v as i64
}

/// A throttle row read from the columns `failures, locked_until, in_flight,
/// in_flight_since` at `at`.
fn throttle_row(r: &postgres::Row, at: usize) -> ThrottleRow {
    ThrottleRow {
        failures: r.get::<_, i64>(at) as u32,
        locked_until: r.get::<_, Option<i64>>(at + 1).map(|v| v as u64),
        in_flight: r.get::<_, i64>(at + 2) as u32,
        in_flight_since: r.get::<_, Option<i64>>(at + 3).map(|v| v as u64),
    }
}

/// The rows of `email` account-wide and of `client`, locked (absent ones are made first, so
/// there is a row to lock: parallel first attempts queue on it instead of racing).
pub fn sign_in_rows_for_update(
    tx: &mut Tx<'_>,
    email: &str,
    client: &str,
) -> Result<(ThrottleRow, ThrottleRow), StoreError> {
    // Always the account row first: every locking write takes them in one order, so none
    // deadlocks.
    const LOCK: &str = "SELECT client, failures, locked_until, in_flight, in_flight_since \
         FROM sign_in_throttle WHERE email = $1 AND client IN ($2, $3) \
         ORDER BY client = $2 DESC FOR UPDATE";
    let mut rows = tx.rows(LOCK, &[&email, &ACCOUNT, &client])?;
    if rows.len() < 2 {
        tx.exec(
            "INSERT INTO sign_in_throttle (email, client, updated_at) \
             VALUES ($1, $2, 0), ($1, $3, 0) ON CONFLICT (email, client) DO NOTHING",
            &[&email, &ACCOUNT, &client],
        )?;
        rows = tx.rows(LOCK, &[&email, &ACCOUNT, &client])?;
    }
    let mut found = (ThrottleRow::default(), ThrottleRow::default());
    for r in rows {
        match r.get::<_, &str>(0) == ACCOUNT {
            true => found.0 = throttle_row(&r, 1),
            false => found.1 = throttle_row(&r, 1),
        }
    }
    Ok(found)
}

/// The user `id`'s row, the throttle rows of `email` and `client` and the user's second
/// factor's row, locked in that order in one statement (the order every writer of them
/// takes): whether its TOTP is on and whether it holds a passkey (`None`: no such user),
/// and the throttle rows. Rows yet to be made are made and locked as
/// [`sign_in_rows_for_update`] does (the first sign-in of an address).
pub fn user_factors_and_gate_for_update(
    tx: &mut Tx<'_>,
    id: u64,
    email: &str,
    client: &str,
) -> Result<SignInHeld, StoreError> {
    // The user's row first (the CTE drives the join), then the throttle rows in the gate's
    // order, then the factor's row for each line of the result; the user's columns come
    // last, on every line.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "WITH u AS (SELECT {} FROM users WHERE id = $1 FOR UPDATE) \
             SELECT (SELECT f.enabled FROM second_factors f WHERE f.user_id = u.id \
                         FOR UPDATE OF f), \
                    EXISTS (SELECT 1 FROM passkeys WHERE user_id = u.id), \
                    t.client, t.failures, t.locked_until, t.in_flight, t.in_flight_since{} \
             FROM u LEFT JOIN LATERAL (SELECT * FROM sign_in_throttle \
                     WHERE email = $2 AND client IN ($3, $4) \
                     ORDER BY client = $3 DESC FOR UPDATE) t ON true",
            rows::USER,
            rows::user_columns_of("u")
        )
    });
    let found = tx.rows(sql, &[&i(id), &email, &ACCOUNT, &client])?;
    let first = found.first();
    let user = first.map(|r| rows::user_at(r, 7));
    let totp = first.is_some_and(|r| r.get::<_, Option<bool>>(0) == Some(true));
    let passkey = first.is_some_and(|r| r.get(1));
    let mut rows = (None, None);
    for r in &found {
        match r.get::<_, Option<&str>>(2) {
            Some(ACCOUNT) => rows.0 = Some(throttle_row(r, 3)),
            Some(_) => rows.1 = Some(throttle_row(r, 3)),
            None => {}
        }
    }
    let rows = match rows {
        (Some(account), Some(row)) => (account, row),
        _ => sign_in_rows_for_update(tx, email, client)?,
    };
    Ok(SignInHeld {
        user,
        totp,
        passkey,
        rows,
    })
}

/// The rows of `email` account-wide (default when absent) and of `client` (`None` when
/// absent), not locked, and with `with_user` the local user with the address: one
/// statement, which answers for an address no row and no account has too.
pub fn sign_in_rows(
    tx: &mut Tx<'_>,
    email: &str,
    client: &str,
    with_user: bool,
) -> Result<(ThrottleRow, Option<ThrottleRow>, Option<User>), StoreError> {
    // One line per key, the account's first; the user's columns (NULL without one) come
    // after the throttle columns, on the account's line only.
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [alone, with] = SQL.get_or_init(|| {
        let select = |user: &str, join: &str| {
            format!(
                "SELECT t.failures, t.locked_until, t.in_flight, t.in_flight_since{user} \
                 FROM (VALUES (0, $2::text), (1, $3::text)) AS k(n, client) \
                 LEFT JOIN sign_in_throttle t ON t.email = $1 AND t.client = k.client{join} \
                 ORDER BY k.n"
            )
        };
        [
            select("", ""),
            select(
                &rows::user_columns_of("u"),
                " LEFT JOIN users u ON k.n = 0 AND lower(u.email) = lower($1) \
                     AND u.home_server IS NULL",
            ),
        ]
    });
    let sql = if with_user { with } else { alone };
    let found = tx.rows(sql, &[&email, &ACCOUNT, &client])?;
    let stored = |n: usize| {
        found
            .get(n)
            .filter(|r| r.get::<_, Option<i64>>(0).is_some())
            .map(|r| throttle_row(r, 0))
    };
    let user = found
        .first()
        .filter(|r| with_user && r.get::<_, Option<i64>>(4).is_some())
        .map(|r| rows::user_at(r, 4));
    Ok((stored(0).unwrap_or_default(), stored(1), user))
}

/// Writes `new` as the row of (`email`, `client`) only while it holds `old` (`None`: no
/// row), in one statement; returns whether it did.
pub fn swap_sign_in_row(
    tx: &mut Tx<'_>,
    email: &str,
    client: &str,
    old: Option<&ThrottleRow>,
    new: &ThrottleRow,
    now: u64,
) -> Result<bool, StoreError> {
    let (failures, locked) = (i64::from(new.failures), new.locked_until.map(i));
    let (in_flight, since, now) = (i64::from(new.in_flight), new.in_flight_since.map(i), i(now));
    let stored: [&(dyn postgres::types::ToSql + Sync); 7] = [
        &email, &client, &failures, &locked, &in_flight, &since, &now,
    ];
    let Some(old) = old else {
        let n = tx.exec(
            "INSERT INTO sign_in_throttle \
                 (email, client, failures, locked_until, in_flight, in_flight_since, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email, client) DO NOTHING",
            &stored,
        )?;
        return Ok(n > 0);
    };
    let (was_failures, was_locked) = (i64::from(old.failures), old.locked_until.map(i));
    let (was_in_flight, was_since) = (i64::from(old.in_flight), old.in_flight_since.map(i));
    let mut params = stored.to_vec();
    params.extend([
        &was_failures as &(dyn postgres::types::ToSql + Sync),
        &was_locked,
        &was_in_flight,
        &was_since,
    ]);
    let n = tx.exec(
        "UPDATE sign_in_throttle SET failures = $3, locked_until = $4, in_flight = $5, \
             in_flight_since = $6, updated_at = $7 \
         WHERE email = $1 AND client = $2 AND failures = $8 \
             AND locked_until IS NOT DISTINCT FROM $9 AND in_flight = $10 \
             AND in_flight_since IS NOT DISTINCT FROM $11",
        &params,
    )?;
    Ok(n > 0)
}

/// Writes throttle rows of `email` in one statement (the same upsert as SQLite's), sent
/// with the write's next statement or its COMMIT: no one needs its count.
pub fn put_sign_in_rows(
    tx: &mut Tx<'_>,
    email: &str,
    rows: &[(&str, &ThrottleRow)],
    now: u64,
) -> Result<(), StoreError> {
    let clients: Vec<&str> = rows.iter().map(|(c, _)| *c).collect();
    let failures: Vec<i64> = rows.iter().map(|(_, r)| i64::from(r.failures)).collect();
    let locked: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.locked_until.map(i)).collect();
    let in_flight: Vec<i64> = rows.iter().map(|(_, r)| i64::from(r.in_flight)).collect();
    let since: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.in_flight_since.map(i)).collect();
    tx.exec_later(
        "INSERT INTO sign_in_throttle \
             (email, client, failures, locked_until, in_flight, in_flight_since, updated_at) \
         SELECT $1, c, f, l, n, s, $7 \
             FROM unnest($2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
             AS u(c, f, l, n, s) \
         ON CONFLICT (email, client) DO UPDATE SET failures = excluded.failures, \
             locked_until = excluded.locked_until, in_flight = excluded.in_flight, \
             in_flight_since = excluded.in_flight_since, updated_at = excluded.updated_at",
        &[
            &email,
            &clients,
            &failures,
            &locked,
            &in_flight,
            &since,
            &i(now),
        ],
    )
}

/// Issues a code unless `max_per_hour` were issued this hour (same rule as SQLite's).
pub fn issue_code(
    tx: &mut Tx<'_>,
    user_id: u64,
    purpose: &str,
    c: &CodeRecord,
    now: u64,
    max_per_hour: u32,
) -> Result<bool, StoreError> {
    let issued = tx.row(
        "INSERT INTO email_codes AS e \
             (user_id, purpose, code_mac, expires_at, tries_left, issued_in_window, window_start) \
         VALUES ($1::bigint, $2, $3, $4::bigint, $5::bigint, 1, $6::bigint) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET \
             code_mac = excluded.code_mac, \
             expires_at = excluded.expires_at, \
             tries_left = CASE WHEN e.expires_at > $6::bigint \
                 THEN LEAST(e.tries_left, excluded.tries_left) ELSE excluded.tries_left END, \
             issued_in_window = CASE WHEN e.window_start <= $6::bigint - 3600000 \
                 THEN 1 ELSE e.issued_in_window + 1 END, \
             window_start = CASE WHEN e.window_start <= $6::bigint - 3600000 \
                 THEN $6::bigint ELSE e.window_start END \
         WHERE e.window_start <= $6::bigint - 3600000 OR e.issued_in_window < $7::bigint \
         RETURNING 1",
        &[
            &i(user_id),
            &purpose,
            &&c.mac[..],
            &i(c.expires_at),
            &i64::from(c.tries_left),
            &i(now),
            &i64::from(max_per_hour),
        ],
    )?;
    Ok(issued.is_some())
}

/// Leases a free snowflake worker (or renews `renew`) for `holder`.
pub fn lease_worker(
    tx: &mut Tx<'_>,
    holder: &str,
    renew: Option<u16>,
    now: u64,
    expires_at: u64,
) -> Result<Option<u16>, StoreError> {
    if let Some(worker) = renew {
        let n = tx.exec(
            "UPDATE id_workers SET expires_at = $3 WHERE worker = $1 AND holder = $2",
            &[&i64::from(worker), &holder, &i(expires_at)],
        )?;
        if n > 0 {
            return Ok(Some(worker));
        }
    }
    let free = tx.row(
        "SELECT w FROM (SELECT 0::bigint AS w UNION ALL SELECT worker + 1 FROM id_workers \
             UNION ALL SELECT worker FROM id_workers WHERE expires_at <= $1) AS c \
         WHERE w < $2 AND w NOT IN (SELECT worker FROM id_workers WHERE expires_at > $1) \
         ORDER BY w LIMIT 1",
        &[&i(now), &WORKERS],
    )?;
    let Some(worker) = free.map(|r| r.get::<_, i64>(0)) else {
        return Ok(None);
    };
    tx.exec(
        "INSERT INTO id_workers (worker, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (worker) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at",
        &[&worker, &holder, &i(expires_at)],
    )?;
    Ok(Some(worker as u16))
}

/// The condition of a session inserted whatever holds (its `$14` is `''`).
pub const UNCONDITIONAL: &str = "$14::text = ''";

/// The statement that inserts a session where `condition` (SQL over `$2` = user id, `$9` =
/// created, `$11` = expiry, `$13` = token id and `$14` = the caller's `extra`) holds.
fn session_insert(condition: &str) -> String {
    format!(
        "INSERT INTO sessions ({}) \
         SELECT $1::bigint, $2::bigint, $3::bytea, $4::bigint, $5::text, $6::text, $7::text, \
                $8::text, $9::bigint, $10::bigint, $11::bigint, $12::text, $13::bigint, \
                $15::text \
         WHERE {condition}",
        rows::SESSION
    )
}

/// Calls `f` with the parameters of [`session_insert`] for `s` and `extra`.
fn with_session<R>(
    s: &Session,
    extra: &(dyn postgres::types::ToSql + Sync),
    f: impl FnOnce(super::tx::Params<'_>) -> R,
) -> R {
    let (id, user, client) = (i(s.id), i(s.user_id), i64::from(s.device.client_id));
    let (created, active, expires) = (i(s.created_at), i(s.last_active), i(s.expires_at));
    let (scopes, token) = (rows::scopes_text(s), s.access_token_id.map(i));
    f(&[
        &id,
        &user,
        &&s.token_hash[..],
        &client,
        &s.device.device_type,
        &s.device.device_version,
        &s.device.app_name,
        &s.device.app_version,
        &created,
        &active,
        &expires,
        &scopes,
        &token,
        extra,
        &s.amr,
    ])
}

/// Inserts `s` where `condition` holds (see [`session_insert`]); returns whether it did.
pub fn insert_session_where(
    tx: &mut Tx<'_>,
    s: &Session,
    condition: &str,
    extra: &(dyn postgres::types::ToSql + Sync),
) -> Result<bool, StoreError> {
    let sql = session_insert(condition);
    let n = with_session(s, extra, |p| tx.exec_unique(&sql, p, "that session"))?;
    Ok(n > 0)
}

/// Inserts `s` and, in the same statement, ends the live sessions of `s`'s user past the
/// `max_live` most recently active (`s` counted; it is not in the statement's snapshot, so
/// it is never ended) and NOTIFYs their ids to every node, delivered when the write
/// commits; `ended` gets them when the answer comes. Sent with the write's next statement
/// or its COMMIT: no round trip of its own, and no transaction of its own for the notice
/// (at the cap, each sign-in ends a session). The live sessions are the user's count
/// (`session_counts`, kept by triggers) less its expired rows, both in the statement's
/// snapshot, so nothing walks the user's sessions: at the cap that walk was 1,000 heap
/// visits while sessions churn. Those over the cap are the least active, from that end of
/// the index; their ids are made an array first and the delete asks for nothing else, so
/// it finds them by key (with the user's id beside them, a cached plan read all the user's
/// rows and filtered them by id).
pub fn insert_session_trimming(
    tx: &mut Tx<'_>,
    s: &Session,
    max_live: u32,
    ended: Later<Ended>,
) -> Result<(), StoreError> {
    use super::notices::{FROM_A_COMMIT, IDS_PER_NOTICE, REVOCATIONS};
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "WITH ins AS ({} RETURNING 1), \
             over AS (SELECT c.held - $16 \
                     - (SELECT COUNT(*) FROM sessions WHERE user_id = $2 AND expires_at <= $9) \
                     AS n \
                 FROM session_counts c WHERE c.user_id = $2), \
             ended AS (DELETE FROM sessions WHERE EXISTS (SELECT 1 FROM ins) \
                 AND id = ANY(ARRAY(SELECT id FROM sessions WHERE user_id = $2 \
                     AND expires_at > $9 ORDER BY last_active, id \
                     LIMIT GREATEST((SELECT n FROM over), 0))) \
                 RETURNING id) \
             SELECT ARRAY(SELECT id FROM ended), \
                 (SELECT count(*) FROM (SELECT pg_notify('{REVOCATIONS}', \
                         '{FROM_A_COMMIT} ' || string_agg(id::text, ',')) \
                     FROM (SELECT id, row_number() OVER () - 1 AS n FROM ended) e \
                     GROUP BY n / {IDS_PER_NOTICE}) told)",
            session_insert(UNCONDITIONAL)
        )
    });
    let others = i64::from(max_live.saturating_sub(1));
    with_session(s, &"", |p| {
        let mut p = p.to_vec();
        p.push(&others);
        tx.rows_later(sql, &p, move |rows| {
            let ids = rows
                .first()
                .map(|r| r.get::<_, Vec<i64>>(0))
                .unwrap_or_default();
            ended.fill(Ended {
                ids: ids.into_iter().map(|id| id as u64).collect(),
                nodes_told: true,
            })
        })
    })
}
