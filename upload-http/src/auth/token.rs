//! `upload-http token new`: a fresh random token and the settings lines
//! that admit it (only its digest goes into the settings).

use base64::Engine;

use super::{Scopes, TokenDigest};

/// A new token, shown once.
#[derive(Debug)]
pub struct NewToken {
    /// The secret, for the client: `Authorization: Bearer <token>`.
    pub token: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Scopes,
}

impl NewToken {
    /// 32 random bytes from the operating system, base64url, after `fu_`.
    ///
    /// # Errors
    /// If the operating system has no randomness to give.
    pub fn generate(name: &str, scopes: Scopes) -> Result<Self, getrandom::Error> {
        let mut secret = [0; 32];
        getrandom::fill(&mut secret)?;
        let token =
            format!("fu_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        Ok(Self { token, name: name.to_owned(), scopes })
    }

    /// What to print: the token, then its line for a settings file and for the environment.
    #[must_use]
    pub fn instructions(&self) -> String {
        let digest = TokenDigest::of(&self.token).to_hex();
        let names = self.scopes.names();
        let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        format!(
            "token (shown once; clients send `Authorization: Bearer <token>`):\n  {token}\n\n\
             in the settings file, under [auth]:\n  tokens = [{{ name = {name:?}, scopes = [{scopes}], sha256 = \"{digest}\" }}]\n\n\
             or in the environment (several tokens: separate them with commas):\n  UPLOAD__AUTH__TOKENS={name}:{plus}:{digest}\n",
            token = self.token,
            name = self.name,
            scopes = quoted.join(", "),
            plus = names.join("+"),
        )
    }
}
