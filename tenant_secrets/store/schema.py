"""The store's versioned migrations, in the order they apply. Never edit one that has shipped: add one.

Each migration is one SQL text with ``{placeholders}`` for the prefixed names, run in the same
transaction as the record of it. Constraint names on ``company_secrets`` follow Drizzle's defaults
(``<table>_<columns>_unique``, ``<table>_<column>_<ref table>_<ref column>_fk``) so that the
application's drizzle-kit sees the table it expects.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from tenant_secrets.store.settings import (
    ACCESS,
    APP_ROLES,
    AUDIT,
    COMPANIES,
    HISTORY,
    KEY_STATE,
    SECRETS,
    StoreSettings,
)


@dataclass(frozen=True)
class Migration:
    name: str
    template: str

    def render(self, settings: StoreSettings, schema: str) -> sql.Composed:
        """The migration's SQL for these settings; ``schema`` qualifies names used inside function bodies."""
        secrets = settings.name(SECRETS)
        companies = settings.name(COMPANIES)
        return sql.SQL(self.template).format(
            companies=sql.Identifier(companies),
            qualified_companies=sql.Identifier(schema, companies),
            secrets=sql.Identifier(secrets),
            secrets_name=sql.Literal(secrets),
            history=sql.Identifier(settings.name(HISTORY)),
            audit=sql.Identifier(settings.name(AUDIT)),
            qualified_audit=sql.Identifier(schema, settings.name(AUDIT)),
            audit_function=sql.Identifier(schema, f"{settings.table_prefix}tenant_secrets_audit"),
            access=sql.Identifier(settings.name(ACCESS)),
            qualified_access=sql.Identifier(schema, settings.name(ACCESS)),
            access_function=sql.Identifier(schema, settings.access_function()),
            app_roles=sql.Identifier(settings.name(APP_ROLES)),
            key_state=sql.Identifier(settings.name(KEY_STATE)),
            qualified_key_state=sql.Identifier(schema, settings.name(KEY_STATE)),
            qualified_history=sql.Identifier(schema, settings.name(HISTORY)),
            write_function=sql.Identifier(schema, settings.write_function()),
            secrets_unique=sql.Identifier(f"{secrets}_company_id_secret_key_unique"),
            secrets_fk=sql.Identifier(f"{secrets}_company_id_{companies}_id_fk"),
        )


COMPANY_SECRETS = Migration(
    "0001_company_secrets",
    """
    -- The seed's Drizzle schema. A table the application already created from it is adopted: its rows
    -- were encrypted with the only master key there was, which becomes key version 1.
    CREATE TABLE IF NOT EXISTS {secrets} (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        company_id uuid NOT NULL,
        secret_key varchar(255) NOT NULL,
        secret_value_encrypted text NOT NULL,
        created_at timestamp DEFAULT now() NOT NULL,
        updated_at timestamp DEFAULT now() NOT NULL,
        CONSTRAINT {secrets_fk} FOREIGN KEY (company_id) REFERENCES {companies} (id) ON DELETE CASCADE,
        CONSTRAINT {secrets_unique} UNIQUE (company_id, secret_key)
    );
    ALTER TABLE {secrets}
        ADD COLUMN IF NOT EXISTS key_version integer NOT NULL DEFAULT 1,
        ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1;
    -- Writers must say which key they used: no default from here on.
    ALTER TABLE {secrets}
        ALTER COLUMN key_version DROP DEFAULT,
        ADD CHECK (key_version >= 1),
        ADD CHECK (version >= 1);
    CREATE INDEX ON {secrets} (key_version);
    """,
)

SECRET_VERSIONS = Migration(
    "0002_company_secret_versions",
    """
    -- Previous values of a secret, newest kept (StoreSettings.history_retention), deleted with it.
    CREATE TABLE {history} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        secret_id uuid NOT NULL REFERENCES {secrets} (id) ON DELETE CASCADE,
        company_id uuid NOT NULL,
        secret_key varchar(255) NOT NULL,
        version integer NOT NULL CHECK (version >= 1),
        key_version integer NOT NULL CHECK (key_version >= 1),
        secret_value_encrypted text NOT NULL,
        written_at timestamp NOT NULL,
        superseded_at timestamp DEFAULT now() NOT NULL,
        UNIQUE (secret_id, version)
    );
    CREATE INDEX ON {history} (key_version);
    """,
)

AUDIT_TRAIL = Migration(
    "0003_company_secret_audit",
    """
    -- Who changed which secret, when: names and numbers only, never a value or a ciphertext.
    CREATE TABLE {audit} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        secret_id uuid NOT NULL,
        company_id uuid NOT NULL,
        secret_key varchar(255) NOT NULL,
        action text NOT NULL CHECK (action IN ('insert', 'update', 'reencrypt', 'delete')),
        version integer NOT NULL,
        key_version integer NOT NULL,
        db_role text NOT NULL,
        session_role text NOT NULL,
        at timestamptz DEFAULT now() NOT NULL
    );
    CREATE INDEX ON {audit} (company_id, at);

    -- SECURITY DEFINER so writers need no privilege on the audit table (and cannot forge rows in it).
    -- Inside it current_user is the owner; the `role` setting still holds the caller's SET ROLE.
    CREATE FUNCTION {audit_function}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    DECLARE
        actor text := CASE current_setting('role') WHEN 'none' THEN session_user::text
                      ELSE current_setting('role') END;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {qualified_audit}
                (secret_id, company_id, secret_key, action, version, key_version, db_role, session_role)
            SELECT n.id, n.company_id, n.secret_key, 'insert', n.version, n.key_version, actor, session_user
            FROM new_rows n;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO {qualified_audit}
                (secret_id, company_id, secret_key, action, version, key_version, db_role, session_role)
            SELECT n.id, n.company_id, n.secret_key,
                   CASE WHEN n.version = o.version AND n.key_version <> o.key_version
                        THEN 'reencrypt' ELSE 'update' END,
                   n.version, n.key_version, actor, session_user
            FROM new_rows n JOIN old_rows o ON o.id = n.id;
        ELSE
            INSERT INTO {qualified_audit}
                (secret_id, company_id, secret_key, action, version, key_version, db_role, session_role)
            SELECT o.id, o.company_id, o.secret_key, 'delete', o.version, o.key_version, actor, session_user
            FROM old_rows o;
        END IF;
        RETURN NULL;
    END
    $fn$;

    -- Statement-level with transition tables: one audit INSERT per statement, not one per row.
    CREATE TRIGGER audit_insert AFTER INSERT ON {secrets}
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {audit_function}();
    CREATE TRIGGER audit_update AFTER UPDATE ON {secrets}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {audit_function}();
    CREATE TRIGGER audit_delete AFTER DELETE ON {secrets}
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {audit_function}();
    """,
)

ACCESS_LOG = Migration(
    "0004_company_secret_access",
    """
    -- Reads by the reader library (tenant_secrets.reader): which tenant asked for which key, where it
    -- was found and with what outcome; never a value. Nobody but the owner may read or change it.
    CREATE TABLE {access} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        company_id uuid,
        tenant varchar(255) NOT NULL,
        secret_key varchar(255) NOT NULL,
        source text CHECK (source IN ('cache', 'database', 'infisical')),
        outcome text NOT NULL
            CHECK (outcome IN ('found', 'not_found', 'unknown_tenant', 'undecryptable', 'failed')),
        wrote_back boolean NOT NULL,
        db_role text NOT NULL,
        session_role text NOT NULL,
        at timestamptz DEFAULT now() NOT NULL
    );
    CREATE INDEX ON {access} (company_id, at);

    -- The one way in: SECURITY DEFINER, so a caller needs EXECUTE (ensure_roles grants it to the
    -- application role) but no privilege on the table; the role and the time are the function's own,
    -- so a caller cannot write them. EXECUTE is not left to PUBLIC.
    CREATE FUNCTION {access_function}(
        company_id uuid, tenant text, secret_key text, source text, outcome text, wrote_back boolean
    ) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
        INSERT INTO {qualified_access}
            (company_id, tenant, secret_key, source, outcome, wrote_back, db_role, session_role)
        VALUES ($1, $2, $3, $4, $5, $6,
                CASE current_setting('role') WHEN 'none' THEN session_user::text
                ELSE current_setting('role') END,
                session_user)
    $fn$;
    REVOKE ALL ON FUNCTION {access_function}(uuid, text, text, text, text, boolean) FROM PUBLIC;
    """,
)

ROW_BINDINGS = Migration(
    "0005_company_secret_bindings",
    """
    -- A MAC binding each ciphertext to its row (tenant_secrets.secret.binding, decision 0027), which the seed's
    -- decryptSecret never reads. NULL until the next run binds the row (schema resource, rotation).
    ALTER TABLE {secrets} ADD COLUMN binding text;
    ALTER TABLE {history} ADD COLUMN binding text;
    """,
)

ACCESS_LOG_CHECKS_TENANT = Migration(
    "0006_access_log_checks_tenant",
    """
    -- The application role sets app.company_id itself, so the log is only as true as the pair it is
    -- given: an entry for a company must name it as the reader was asked for it, by its subdomain or by
    -- its id (docs/decisions/0042). An entry without a company (the tenant was not found) names none.
    CREATE OR REPLACE FUNCTION {access_function}(
        company_id uuid, tenant text, secret_key text, source text, outcome text, wrote_back boolean
    ) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    BEGIN
        IF $1 IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM {qualified_companies} c WHERE c.id = $1 AND (c.subdomain = $2 OR c.id::text = lower($2))
        ) THEN
            RAISE EXCEPTION 'access log: tenant "%" is neither the subdomain nor the id of company %', $2, $1
                USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO {qualified_access}
            (company_id, tenant, secret_key, source, outcome, wrote_back, db_role, session_role)
        VALUES ($1, $2, $3, $4, $5, $6,
                CASE current_setting('role') WHEN 'none' THEN session_user::text
                ELSE current_setting('role') END,
                session_user);
    END
    $fn$;
    """,
)

APP_ROLES_RECORD = Migration(
    "0007_tenant_secrets_app_roles",
    """
    -- Every role ever given the application's rights (store.roles.ensure_roles records it in the same
    -- transaction as the grants), so that none is later given the provisioner's write rights. By oid and
    -- by name: a renamed role is still the one the application logs in as, and so is a role dropped and
    -- made again under the name the application's configuration holds. Only the owner reads or writes it.
    CREATE TABLE {app_roles} (
        role_oid oid NOT NULL,
        role_name text NOT NULL,
        first_granted_at timestamptz DEFAULT now() NOT NULL,
        PRIMARY KEY (role_oid, role_name)
    );
    -- The application's roles before this migration: those its read policy names.
    INSERT INTO {app_roles} (role_oid, role_name)
    SELECT r.oid, r.rolname FROM pg_policy p
    JOIN pg_class c ON c.oid = p.polrelid AND c.relname = {secrets_name}
        AND c.relnamespace = current_schema()::regnamespace
    JOIN pg_roles r ON r.oid = ANY (p.polroles)
    WHERE p.polname = 'tenant_secrets_app_read';
    """,
)

KEYLESS_WRITES = Migration(
    "0008_keyless_writes",
    """
    -- What the stack records for writers that do not hold the keyring (the application's own
    -- setTenantSecret, docs/decisions/0049): the master key version MASTER_ENCRYPTION_KEY holds, and how
    -- many previous values a secret keeps. One row, written by the schema resource on every `up`
    -- (store.record_key_state); only the owner reads or writes it. Without it a keyless write is refused.
    CREATE TABLE {key_state} (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        app_key_version integer NOT NULL CHECK (app_key_version >= 1),
        history_retention integer NOT NULL CHECK (history_retention >= 0),
        recorded_at timestamptz DEFAULT now() NOT NULL
    );
    -- Until the schema resource records the stack's own (in the same run as this migration): the newest
    -- version stored, or 1 for a table the application made from the seed (0001 adopts its rows as version 1).
    INSERT INTO {key_state} (app_key_version, history_retention)
    SELECT coalesce(max(key_version), 1), 10 FROM {secrets};

    -- A write that names only the seed's columns (an INSERT without key_version; an UPDATE that changes
    -- the ciphertext and leaves key_version, version and binding as they were) is completed here, for
    -- every writer alike: key_version is the recorded one, an update bumps version, keeps the previous
    -- value as history (pruned to the recorded retention) and sets updated_at, and the row is left
    -- unbound (binding NULL) for a holder of the keyring to bind. The keyring's own writers (tenant_secrets.store)
    -- always write key_version and binding, so they pass through unchanged. SECURITY DEFINER: the writer
    -- needs no privilege on the history or the key state. The statement-level audit triggers (0003)
    -- record the insert or update as for any other writer.
    CREATE FUNCTION {write_function}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    DECLARE
        state record;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.key_version IS NOT NULL THEN
                RETURN NEW;
            END IF;
        ELSIF NEW.secret_value_encrypted IS NOT DISTINCT FROM OLD.secret_value_encrypted
            OR NEW.binding IS DISTINCT FROM OLD.binding
            OR NEW.key_version IS DISTINCT FROM OLD.key_version
            OR NEW.version IS DISTINCT FROM OLD.version THEN
            RETURN NEW;
        END IF;
        SELECT k.app_key_version, k.history_retention INTO state FROM {qualified_key_state} k;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'company_secrets: no master key version is recorded for writers without the keyring yet'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'run `pulumi up` on the stack once (its schema resource records the version)';
        END IF;
        NEW.key_version := state.app_key_version;
        NEW.binding := NULL;
        IF TG_OP = 'UPDATE' THEN
            NEW.version := OLD.version + 1;
            NEW.updated_at := now();
            IF state.history_retention > 0 THEN
                INSERT INTO {qualified_history} (secret_id, company_id, secret_key, version, key_version,
                                                 secret_value_encrypted, written_at, binding)
                VALUES (OLD.id, OLD.company_id, OLD.secret_key, OLD.version, OLD.key_version,
                        OLD.secret_value_encrypted, OLD.updated_at, OLD.binding);
                DELETE FROM {qualified_history} h
                WHERE h.secret_id = OLD.id AND h.version <= OLD.version - state.history_retention;
            END IF;
        ELSE
            NEW.version := 1;
        END IF;
        RETURN NEW;
    END
    $fn$;
    REVOKE ALL ON FUNCTION {write_function}() FROM PUBLIC;

    -- Row-level BEFORE triggers: they run before the NOT NULL check, so an INSERT without key_version gets
    -- one; in INSERT ... ON CONFLICT DO UPDATE the update's trigger sees the row as stored (OLD).
    CREATE TRIGGER keyless_insert BEFORE INSERT ON {secrets}
        FOR EACH ROW EXECUTE FUNCTION {write_function}();
    CREATE TRIGGER keyless_update BEFORE UPDATE ON {secrets}
        FOR EACH ROW EXECUTE FUNCTION {write_function}();
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    COMPANY_SECRETS,
    SECRET_VERSIONS,
    AUDIT_TRAIL,
    ACCESS_LOG,
    ROW_BINDINGS,
    ACCESS_LOG_CHECKS_TENANT,
    APP_ROLES_RECORD,
    KEYLESS_WRITES,
)
# The newest migration's name: changes exactly when a release adds a migration.
SCHEMA_VERSION = MIGRATIONS[-1].name

# Demo and tests only (StoreSettings.create_companies_table): the application owns this table. Not
# versioned: created when missing, never altered.
DEMO_COMPANIES = Migration(
    "demo_companies",
    """
    CREATE TABLE IF NOT EXISTS {companies} (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        subdomain varchar(255) NOT NULL UNIQUE,
        name varchar(255) NOT NULL
    );
    """,
)
