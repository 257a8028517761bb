//! The accounts area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{AccountChange, SecondFactor, ThrottleRow, User};
use crate::domain::state::store::{
    AccountsRead, AccountsWrite, PasskeysRead, SignInHeld, StoreError,
};
use crate::sqlite::{account_changes, identities, second_factors, sign_in_throttle, users};

impl AccountsRead for Tx<'_> {
    fn user(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        users::by_id(self.0, id)
    }
    fn user_by_email(&mut self, email: &str) -> Result<Option<User>, StoreError> {
        users::by_email(self.0, email)
    }
    fn user_by_home(&mut self, server: &str, remote: u64) -> Result<Option<User>, StoreError> {
        users::by_home(self.0, server, remote)
    }
    fn users(&mut self) -> Result<Vec<User>, StoreError> {
        users::list(self.0)
    }
    fn account_change(&mut self, user_id: u64) -> Result<AccountChange, StoreError> {
        account_changes::get(self.0, user_id)
    }
    fn second_factor(&mut self, user_id: u64) -> Result<Option<SecondFactor>, StoreError> {
        second_factors::get(self.0, user_id)
    }
    fn user_by_pending_email(&mut self, email: &str) -> Result<Option<u64>, StoreError> {
        account_changes::by_pending_email(self.0, email)
    }
    fn accounts_due_for_deletion(&mut self, now: u64, limit: u32) -> Result<Vec<u64>, StoreError> {
        account_changes::due(self.0, now, limit)
    }
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError> {
        identities::user_of(self.0, provider, subject)
    }
    fn sign_in_throttle(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(u32, Option<u64>), StoreError> {
        sign_in_throttle::get(self.0, email, client)
    }
    fn sign_in_rows(
        &mut self,
        email: &str,
        client: &str,
        with_user: bool,
    ) -> Result<(ThrottleRow, Option<ThrottleRow>, Option<User>), StoreError> {
        let user = match with_user {
            true => users::by_email(self.0, email)?,
            false => None,
        };
        Ok((
            sign_in_throttle::row(self.0, email, "*")?,
            sign_in_throttle::stored(self.0, email, client)?,
            user,
        ))
    }
}

impl AccountsWrite for Tx<'_> {
    fn insert_user(&mut self, u: &User) -> Result<(), StoreError> {
        users::insert(self.0, u)
    }
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        // The single writer holds every row already.
        users::by_id(self.0, id)
    }
    fn user_factors_and_gate_for_update(
        &mut self,
        id: u64,
        email: &str,
        client: &str,
    ) -> Result<SignInHeld, StoreError> {
        let rows = self.sign_in_rows_for_update(email, client)?;
        let Some(user) = users::by_id(self.0, id)? else {
            return Ok(SignInHeld {
                user: None,
                totp: false,
                passkey: false,
                rows,
            });
        };
        Ok(SignInHeld {
            user: Some(user),
            totp: second_factors::get(self.0, id)?.is_some_and(|f| f.enabled),
            passkey: !self.passkeys(id)?.is_empty(),
            rows,
        })
    }
    fn upgrade_guest(&mut self, u: &User) -> Result<bool, StoreError> {
        users::upgrade_guest(self.0, u)
    }
    fn set_password_hash(&mut self, id: u64, hash: &str) -> Result<(), StoreError> {
        users::set_password_hash(self.0, id, hash)
    }
    fn sign_in_rows_for_update(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(ThrottleRow, ThrottleRow), StoreError> {
        // The single writer holds every row already.
        Ok((
            sign_in_throttle::row(self.0, email, "*")?,
            sign_in_throttle::row(self.0, email, client)?,
        ))
    }
    fn swap_sign_in_row(
        &mut self,
        email: &str,
        client: &str,
        old: Option<&ThrottleRow>,
        new: &ThrottleRow,
        now: u64,
    ) -> Result<bool, StoreError> {
        sign_in_throttle::swap(self.0, email, client, old, new, now)
    }
    fn put_sign_in_rows(
        &mut self,
        email: &str,
        rows: &[(&str, &ThrottleRow)],
        now: u64,
    ) -> Result<(), StoreError> {
        for (client, row) in rows {
            sign_in_throttle::put(self.0, email, client, row, now)?;
        }
        Ok(())
    }
    fn clear_sign_in_throttle(&mut self, email: &str) -> Result<(), StoreError> {
        sign_in_throttle::clear(self.0, email)
    }
    fn sweep_sign_in_throttle(&mut self, before: u64) -> Result<u64, StoreError> {
        sign_in_throttle::sweep(self.0, before)
    }
    fn set_user_disabled(&mut self, id: u64, disabled: bool) -> Result<(), StoreError> {
        users::set_disabled(self.0, id, disabled)
    }
    fn delete_user(&mut self, id: u64) -> Result<bool, StoreError> {
        users::delete(self.0, id)
    }
    fn set_email_verified(&mut self, id: u64) -> Result<(), StoreError> {
        users::set_email_verified(self.0, id)
    }
    fn set_user_name(&mut self, id: u64, name: &str) -> Result<(), StoreError> {
        users::set_name(self.0, id, name)
    }
    fn set_account_change(&mut self, user_id: u64, c: &AccountChange) -> Result<(), StoreError> {
        account_changes::set(self.0, user_id, c)
    }
    fn second_factor_for_update(
        &mut self,
        user_id: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        // The single writer holds every row already.
        second_factors::get(self.0, user_id)
    }
    fn set_second_factor(
        &mut self,
        user_id: u64,
        factor: Option<&SecondFactor>,
        now: u64,
    ) -> Result<(), StoreError> {
        second_factors::set(self.0, user_id, factor, now)
    }
    fn confirm_email_change(&mut self, user_id: u64, email: &str) -> Result<bool, StoreError> {
        account_changes::confirm_email(self.0, user_id, email)
    }
    fn insert_identity(
        &mut self,
        provider: &str,
        subject: &str,
        user_id: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        identities::insert(self.0, provider, subject, user_id, now)
    }
}
