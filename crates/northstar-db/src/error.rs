use thiserror::Error;

/// What can go wrong in the database layer, in terms its callers act on.
#[derive(Debug, Error)]
pub enum DbError {
    /// A unique constraint refused the write; `constraint` names it.
    #[error("unique constraint {constraint} violated")]
    UniqueViolation {
        /// The violated constraint or index.
        constraint: String,
    },
    /// The database could not be reached or the pool is exhausted.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The embedded cluster could not be started or stopped.
    #[error(transparent)]
    Embedded(#[from] crate::embedded::EmbeddedError),
    /// Any other database error: a bug or an outage, never the caller's fault.
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::UniqueViolation {
                constraint: db.constraint().unwrap_or_default().to_owned(),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                DbError::Unavailable(err)
            }
            _ => DbError::Other(err),
        }
    }
}

impl DbError {
    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            DbError::UniqueViolation { .. } => Some("23505".to_owned()),
            DbError::Other(sqlx::Error::Database(err)) => err.code().map(|code| code.into_owned()),
            _ => None,
        }
    }
}
