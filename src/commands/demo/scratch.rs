//! The demo's scratch database: created with a unique name on the given
//! server, given the watched schema, dropped at the end.

use std::time::Duration;

use registre_actors::identifier::Identifier;
use registre_actors::{DbError, Project};

use super::sql;
use tokio_postgres::{Client, NoTls};

/// The watched tables, as tests and local runs create them.
const SCHEMA: &str = include_str!("../../../sql/schema.sql");

/// A scratch database and the server connection that will drop it.
pub struct Scratch {
    pub name: Identifier,
    server: Project,
    admin: Client,
}

/// Connects to `project`'s database, bounded by `timeout` as a whole.
async fn connect(project: &Project, timeout: Duration) -> Result<Client, DbError> {
    let mut pg = project.pg.clone();
    pg.connect_timeout(timeout);
    pg.application_name("registre-monitor demo");
    let (client, connection) = tokio::time::timeout(timeout, pg.connect(NoTls))
        .await
        .map_err(|_| DbError::Unreachable(format!("no answer within {timeout:?}")))??;
    actix_rt::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Scratch {
    /// Creates a uniquely named database on `server` and applies the schema.
    pub async fn create(server: &Project, timeout: Duration) -> Result<Scratch, DbError> {
        let admin = connect(server, timeout).await?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = Identifier::new(&format!("registre_demo_{}_{stamp}", std::process::id()))
            .expect("letters, digits and underscores");
        sql::create_database(&admin, &name).await?;
        let scratch = Scratch {
            name,
            server: server.clone(),
            admin,
        };
        let applied = match connect(&scratch.project(), timeout).await {
            Ok(client) => sql::apply_script(&client, SCHEMA).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            let _ = scratch.drop_database().await;
            return Err(e);
        }
        Ok(scratch)
    }

    /// The scratch database as a project named `demo`.
    pub fn project(&self) -> Project {
        // A copy of the server's project (whatever else it carries, such as
        // TLS settings), pointed at the scratch database.
        let mut project = self.server.on_database(self.name.as_str());
        project.name = "demo".into();
        project
    }

    /// Drops the database, ending whatever session is still on it.
    pub async fn drop_database(&self) -> Result<(), DbError> {
        sql::drop_database(&self.admin, &self.name).await
    }
}
