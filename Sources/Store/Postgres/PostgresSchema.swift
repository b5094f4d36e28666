import PostgresNIO

/// The shared store's tables, made by numbered migrations as the embedded
/// store's are (`SQLiteStore.migrator`), one list of statements each:
/// PostgreSQL's extended protocol takes one statement at a time.
///
/// Every node runs `migrate` as it starts. The migrations run in one
/// transaction under an advisory lock, so that of two nodes starting
/// together one migrates and the other waits, then finds nothing to do; and
/// a migration that fails leaves the schema as it was (PostgreSQL's DDL is
/// transactional).
enum PostgresSchema {
    /// `pg_advisory_xact_lock`'s key: "HIKY".
    ///
    /// Every text column that a listing sorts or pages by is `COLLATE "C"`: byte order, as SQLite's, whatever
    /// the database's locale.
    static let lockKey: Int64 = 0x4849_4B59

    static let migrations: [(name: String, statements: [String])] = [
        ("v1-accounts", [
            // AccountStore: an account, its sending domains and its SMTP usernames.
            """
            CREATE TABLE account (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                name TEXT COLLATE "C" NOT NULL UNIQUE,
                smtp_username TEXT COLLATE "C" NOT NULL UNIQUE,
                smtp_password_hash TEXT NOT NULL,
                smtp_password_revoked_at TIMESTAMPTZ,
                disabled BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMPTZ NOT NULL,
                egress_pool TEXT,
                max_send_rate DOUBLE PRECISION NOT NULL DEFAULT -1,
                max_24h_send BIGINT NOT NULL DEFAULT -1,
                sandbox BOOLEAN NOT NULL DEFAULT FALSE,
                suppressed_reasons TEXT NOT NULL DEFAULT 'bounce,complaint'
            )
            """,
            """
            CREATE TABLE account_domain (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                domain TEXT COLLATE "C" NOT NULL,
                verified_at TIMESTAMPTZ,
                return_path TEXT,
                return_path_verified_at TIMESTAMPTZ,
                PRIMARY KEY (account_id, domain)
            )
            """,
            """
            CREATE TABLE smtp_credential (
                username TEXT COLLATE "C" PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                password_hash TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX smtp_credential_account ON smtp_credential (account_id)",
            // SuppressionList: addresses kept lower-cased, so that the key finds them whatever their case.
            """
            CREATE TABLE suppression (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                address TEXT COLLATE "C" NOT NULL CHECK (address = lower(address)),
                reason TEXT NOT NULL,
                scope TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                source TEXT,
                PRIMARY KEY (account_id, address)
            )
            """,
            "CREATE INDEX suppression_newest ON suppression (account_id, created_at DESC, address)",
            // APIKeyStore: the secret hashed (bearer tokens) and sealed under the nodes' shared secrets.key (Signature V4).
            """
            CREATE TABLE api_key (
                key_id TEXT COLLATE "C" PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                scope TEXT NOT NULL,
                secret_hash BYTEA NOT NULL,
                sealed_secret BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                revoked BOOLEAN NOT NULL DEFAULT FALSE,
                name TEXT
            )
            """,
            "CREATE INDEX api_key_account ON api_key (account_id, created_at)",
            // DKIMKeyStore: the private key sealed; at most one active key per domain, algorithm and account.
            """
            CREATE TABLE dkim_key (
                domain TEXT COLLATE "C" NOT NULL,
                selector TEXT NOT NULL,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                algorithm TEXT NOT NULL,
                sealed_private_key BYTEA NOT NULL,
                public_key TEXT NOT NULL,
                active BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (domain, selector)
            )
            """,
            "CREATE UNIQUE INDEX dkim_key_active ON dkim_key (domain, algorithm, account_id) WHERE active",
            // UsageLedger: every node adds its counts per account and hour (hours since the epoch).
            """
            CREATE TABLE usage_hour (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                hour BIGINT NOT NULL,
                messages BIGINT NOT NULL,
                recipients BIGINT NOT NULL,
                bytes BIGINT NOT NULL,
                PRIMARY KEY (account_id, hour)
            )
            """,
            // TemplateStore: names compare byte by byte (COLLATE "C"), as SQLite's, so that paging by name
            // gives the same pages whatever the database's locale.
            """
            CREATE TABLE template (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT COLLATE "C" NOT NULL,
                subject TEXT NOT NULL,
                text TEXT,
                html TEXT,
                marketing BOOLEAN NOT NULL DEFAULT FALSE,
                defaults TEXT NOT NULL DEFAULT '{}',
                missing TEXT NOT NULL DEFAULT 'error',
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                display_name TEXT,
                generation TEXT NOT NULL DEFAULT 'native',
                PRIMARY KEY (account_id, name)
            )
            """,
            """
            CREATE TABLE template_version (
                id TEXT COLLATE "C" PRIMARY KEY,
                account_id BIGINT NOT NULL,
                template_name TEXT COLLATE "C" NOT NULL,
                name TEXT NOT NULL,
                subject TEXT NOT NULL,
                html TEXT,
                text TEXT,
                active BOOLEAN NOT NULL DEFAULT FALSE,
                test_data TEXT,
                editor TEXT NOT NULL DEFAULT 'code',
                generate_plain BOOLEAN NOT NULL DEFAULT TRUE,
                updated_at TIMESTAMPTZ NOT NULL,
                FOREIGN KEY (account_id, template_name) REFERENCES template (account_id, name) ON DELETE CASCADE
            )
            """,
            "CREATE INDEX template_version_template ON template_version (account_id, template_name)",
            // UnsubscribeGroupStore: topics, and the (lower-cased) addresses that left each.
            """
            CREATE TABLE unsubscribe_group (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                is_default BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX unsubscribe_group_account ON unsubscribe_group (account_id)",
            """
            CREATE TABLE group_unsubscribe (
                group_id BIGINT NOT NULL REFERENCES unsubscribe_group(id) ON DELETE CASCADE,
                address TEXT COLLATE "C" NOT NULL CHECK (address = lower(address)),
                created_at TIMESTAMPTZ NOT NULL,
                source TEXT,
                PRIMARY KEY (group_id, address)
            )
            """,
            // ConsoleUserStore: people, their sessions (only the cookie's hash) and their second factor (sealed).
            """
            CREATE TABLE console_user (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                email TEXT COLLATE "C" NOT NULL UNIQUE,
                role TEXT NOT NULL,
                account_id BIGINT REFERENCES account(id) ON DELETE CASCADE,
                password_hash TEXT NOT NULL,
                disabled BOOLEAN NOT NULL DEFAULT FALSE,
                created_at TIMESTAMPTZ NOT NULL,
                totp_secret BYTEA,
                totp_pending BYTEA,
                totp_last_step BIGINT
            )
            """,
            """
            CREATE TABLE console_session (
                token_hash BYTEA PRIMARY KEY,
                user_id BIGINT NOT NULL REFERENCES console_user(id) ON DELETE CASCADE,
                csrf_token TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                last_seen_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX console_session_user ON console_session (user_id)",
            // WebhookStore: endpoints (the signing key sealed), their recent requests and pending replays.
            """
            CREATE TABLE webhook (
                id TEXT COLLATE "C" PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                url TEXT NOT NULL,
                format TEXT NOT NULL,
                event_types TEXT NOT NULL,
                enabled BOOLEAN NOT NULL DEFAULT TRUE,
                sealed_key BYTEA,
                public_key TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                cursor BIGINT NOT NULL,
                failing_since TIMESTAMPTZ,
                disabled_reason TEXT,
                confirmed BOOLEAN NOT NULL DEFAULT TRUE,
                confirm_token TEXT,
                UNIQUE (account_id, name)
            )
            """,
            """
            CREATE TABLE webhook_attempt (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                at TIMESTAMPTZ NOT NULL,
                events BIGINT NOT NULL,
                first_event BIGINT NOT NULL,
                last_event BIGINT NOT NULL,
                status BIGINT,
                error TEXT,
                duration_ms BIGINT NOT NULL,
                replay BOOLEAN NOT NULL DEFAULT FALSE,
                test BOOLEAN NOT NULL DEFAULT FALSE
            )
            """,
            "CREATE INDEX webhook_attempt_webhook ON webhook_attempt (webhook_id, id)",
            """
            CREATE TABLE webhook_replay (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                webhook_id TEXT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,
                after BIGINT NOT NULL,
                through BIGINT NOT NULL
            )
            """,
            // ConfigurationSetStore: SES configuration sets, their event destinations, and tracking defaults (on the account).
            """
            CREATE TABLE configuration_set (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT COLLATE "C" NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (account_id, name)
            )
            """,
            """
            CREATE TABLE event_destination (
                account_id BIGINT NOT NULL,
                configuration_set TEXT COLLATE "C" NOT NULL,
                name TEXT COLLATE "C" NOT NULL,
                enabled BOOLEAN NOT NULL,
                event_types TEXT NOT NULL,
                topic_arn TEXT NOT NULL,
                PRIMARY KEY (account_id, configuration_set, name),
                FOREIGN KEY (account_id, configuration_set) REFERENCES configuration_set (account_id, name) ON DELETE CASCADE
            )
            """,
            "ALTER TABLE account ADD COLUMN track_opens BOOLEAN NOT NULL DEFAULT FALSE",
            "ALTER TABLE account ADD COLUMN track_clicks BOOLEAN NOT NULL DEFAULT FALSE",
            // NodeRegistry: each node's last heartbeat.
            """
            CREATE TABLE node (
                name TEXT COLLATE "C" PRIMARY KEY,
                version TEXT NOT NULL,
                started_at TIMESTAMPTZ NOT NULL,
                heartbeat_at TIMESTAMPTZ NOT NULL,
                pending_recipients BIGINT NOT NULL,
                pending_messages BIGINT NOT NULL
            )
            """,
        ]),
        ("v2-contacts", [
            // ContactBook: an account's fields, each given a slot. A slot is two columns, a text one for text
            // fields and a number one for the others (dates as YYYYMMDD, booleans as 0 or 1), because a slot
            // is one account's text field and another's number. Text compares byte by byte, as in SQLite.
            // The contacts' times are seconds since the epoch, as the segment compiler's arithmetic reads them.
            "ALTER TABLE account ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC'",
            """
            CREATE TABLE contact_field (
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                slot BIGINT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (account_id, name),
                UNIQUE (account_id, slot)
            )
            """,
            """
            CREATE TABLE contact (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                address TEXT COLLATE "C" NOT NULL CHECK (address = lower(address)),
                \(slotColumns),
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                last_delivered_at DOUBLE PRECISION,
                last_opened_at DOUBLE PRECISION,
                last_clicked_at DOUBLE PRECISION,
                last_bounced_at DOUBLE PRECISION
            )
            """,
            "CREATE UNIQUE INDEX contact_address ON contact (account_id, address)",
            // Segments scan an account's contacts in id order.
            "CREATE INDEX contact_account ON contact (account_id, id)",
            """
            CREATE TABLE contact_list (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX contact_list_account ON contact_list (account_id)",
            """
            CREATE TABLE contact_list_member (
                list_id BIGINT NOT NULL REFERENCES contact_list(id) ON DELETE CASCADE,
                contact_id BIGINT NOT NULL REFERENCES contact(id) ON DELETE CASCADE,
                PRIMARY KEY (list_id, contact_id)
            )
            """,
            "CREATE INDEX contact_list_member_contact ON contact_list_member (contact_id)",
            // SegmentStore: the expression as the JSON it was given.
            """
            CREATE TABLE segment (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                expression TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX segment_account ON segment (account_id)",
            // ContactImportStore: an import, the node that runs it, and its rows staged until applied.
            """
            CREATE TABLE contact_import (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                node TEXT NOT NULL,
                state TEXT NOT NULL,
                rows_read BIGINT NOT NULL DEFAULT 0,
                rows_valid BIGINT NOT NULL DEFAULT 0,
                rows_invalid BIGINT NOT NULL DEFAULT 0,
                applied BIGINT NOT NULL DEFAULT 0,
                errors TEXT NOT NULL DEFAULT '[]',
                list_id BIGINT,
                started_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX contact_import_account ON contact_import (account_id, id)",
            """
            CREATE TABLE contact_import_row (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                import_id BIGINT NOT NULL REFERENCES contact_import(id) ON DELETE CASCADE,
                address TEXT COLLATE "C" NOT NULL,
                \(slotColumns)
            )
            """,
            "CREATE INDEX contact_import_row_import ON contact_import_row (import_id, address, seq)",
            // CampaignStore: campaigns; each run's recipients (variant NULL: waiting for the A/B test's winner;
            // state pending, submitting, queued or skipped); their counts per state, kept by the statements that
            // change the rows; and one row per claimed batch, with the node whose intake it went to.
            """
            CREATE TABLE campaign (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                state TEXT NOT NULL,
                definition TEXT NOT NULL,
                next_run_at TIMESTAMPTZ,
                occurrence TEXT,
                test_ends_at TIMESTAMPTZ,
                winner BIGINT,
                decision TEXT,
                note TEXT,
                excluded BIGINT NOT NULL DEFAULT 0,
                paused_from TEXT,
                created_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX campaign_account ON campaign (account_id, id)",
            "CREATE INDEX campaign_due ON campaign (state, next_run_at)",
            """
            CREATE TABLE campaign_recipient (
                campaign_id BIGINT NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                occurrence TEXT NOT NULL,
                contact_id BIGINT NOT NULL,
                address TEXT COLLATE "C" NOT NULL,
                variant BIGINT,
                state TEXT NOT NULL DEFAULT 'pending',
                message_id TEXT,
                PRIMARY KEY (campaign_id, occurrence, contact_id)
            )
            """,
            "CREATE INDEX campaign_recipient_state ON campaign_recipient (campaign_id, occurrence, state, contact_id)",
            """
            CREATE TABLE campaign_count (
                campaign_id BIGINT NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                occurrence TEXT NOT NULL,
                state TEXT NOT NULL,
                waiting BOOLEAN NOT NULL,
                n BIGINT NOT NULL,
                PRIMARY KEY (campaign_id, occurrence, state, waiting)
            )
            """,
            """
            CREATE TABLE campaign_claim (
                campaign_id BIGINT NOT NULL REFERENCES campaign(id) ON DELETE CASCADE,
                occurrence TEXT NOT NULL,
                after_contact BIGINT NOT NULL,
                through_contact BIGINT NOT NULL,
                seed BIGINT NOT NULL,
                claimed_at_ms BIGINT NOT NULL,
                node TEXT NOT NULL,
                PRIMARY KEY (campaign_id, occurrence, through_contact)
            )
            """,
            // ContactActivityLog: where each node's follower is in that node's own delivery log.
            """
            CREATE TABLE contact_activity_cursor (
                node TEXT PRIMARY KEY,
                last_event BIGINT NOT NULL
            )
            """,
        ]),
        ("v3-secrets-check", [
            // A MAC under the nodes' shared secrets.key, written by the first node: a node with another key
            // refuses to start instead of sealing what the others cannot open (`PostgresStore.checkSecretsKey`).
            "CREATE TABLE secrets_check (id INTEGER PRIMARY KEY CHECK (id = 1), mac BYTEA NOT NULL)",
        ]),
        ("v4-delivery-log", [
            // Every node's events, copied by each node's follower (`SharedDeliveryLog`). Partitioned by the day the
            // row was copied, by the database's clock: days only ever come in order, so retention drops whole
            // partitions and an event stamped with an odd time cannot ask for a partition out of the way.
            "CREATE SEQUENCE delivery_event_id_seq",
            """
            CREATE TABLE delivery_event (
                id BIGINT NOT NULL DEFAULT nextval('delivery_event_id_seq'),
                day INTEGER NOT NULL DEFAULT (floor(extract(epoch FROM now()) / 86400))::integer,
                node TEXT COLLATE "C" NOT NULL,
                node_event_id BIGINT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                account_id BIGINT,
                message_id TEXT COLLATE "C" NOT NULL,
                recipient TEXT NOT NULL,
                type TEXT COLLATE "C" NOT NULL,
                attempt INTEGER, reply_code INTEGER, enhanced_code TEXT, reply_text TEXT, category TEXT COLLATE "C", hard BOOLEAN,
                site TEXT COLLATE "C", mx_host TEXT, remote_ip TEXT, source_ip TEXT, tls_version TEXT, duration_ms INTEGER,
                user_agent TEXT, client_ip TEXT, url TEXT, machine BOOLEAN,
                sender TEXT, subject TEXT, tags TEXT[] NOT NULL DEFAULT '{}',
                UNIQUE (node, node_event_id, day)
            ) PARTITION BY RANGE (day)
            """,
            "CREATE INDEX delivery_event_account_at ON delivery_event (account_id, at, id)",
            "CREATE INDEX delivery_event_at ON delivery_event (at, id)",
            "CREATE INDEX delivery_event_recipient ON delivery_event (lower(recipient), at)",
            "CREATE INDEX delivery_event_message ON delivery_event (message_id)",
            // How far each node's log has been copied; written with the copy, in its transaction.
            "CREATE TABLE delivery_log_position (node TEXT COLLATE \"C\" PRIMARY KEY, last_event BIGINT NOT NULL)",
        ]),
        ("v5-site-slots", [
            // A site's connection slots held by the nodes (`SiteSlotLeases`): a row per slot, leased until `expires_at`.
            """
            CREATE TABLE site_slot (
                site TEXT COLLATE "C" NOT NULL,
                slot INTEGER NOT NULL,
                node TEXT COLLATE "C" NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (site, slot)
            )
            """,
            "CREATE INDEX site_slot_node ON site_slot (node)",
        ]),
        ("v6-webhook-positions", [
            // Each node's position in its own log, per endpoint: node A's event 500 is not node B's.
            """
            CREATE TABLE webhook_position (
                webhook_id TEXT NOT NULL REFERENCES webhook (id) ON DELETE CASCADE,
                node TEXT COLLATE "C" NOT NULL,
                position BIGINT NOT NULL,
                PRIMARY KEY (webhook_id, node)
            )
            """,
            // Until now every node read the one cursor: it is where each node that ran stands. A node is known by
            // its registry name and by the store's (they differed for a node without `cluster.nodeName`); only a
            // node that serves the API sends webhooks, and each of those has a contact-activity position.
            """
            INSERT INTO webhook_position (webhook_id, node, position)
            SELECT w.id, n.name, w.cursor FROM webhook w
            CROSS JOIN (SELECT name FROM node UNION SELECT node FROM contact_activity_cursor) n
            """,
        ]),
        ("v7-cluster-inbox", [
            // What a node heard about another node's message, for that node to apply (`ClusterInbox`).
            """
            CREATE TABLE cluster_inbox (
                id BIGSERIAL PRIMARY KEY,
                message_id TEXT COLLATE "C" NOT NULL,
                payload BYTEA NOT NULL,
                from_node TEXT COLLATE "C" NOT NULL,
                posted_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
        ]),
    ]

    /// `t1 TEXT, n1 DOUBLE PRECISION, …`: a text and a number column per slot.
    static let slotColumns = (1...ContactField.maximumPerAccount).map { "t\($0) TEXT COLLATE \"C\", n\($0) DOUBLE PRECISION" }
        .joined(separator: ", ")

    /// Applies the migrations this database lacks; returns their names.
    @discardableResult
    static func migrate(_ pool: PostgresPool) throws -> [String] {
        try pool.transaction { transaction in
            // Waiting for another node's migration, and a long migration itself, are not slow statements.
            _ = try transaction.query("SET LOCAL statement_timeout = 0")
            _ = try transaction.queryWithoutDeadline("SELECT pg_advisory_xact_lock(\(lockKey))")
            _ = try transaction.query("""
                CREATE TABLE IF NOT EXISTS hikyaku_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """)
            let applied = Set(try transaction.query("SELECT name FROM hikyaku_migration").records.map { try $0.decode("name", as: String.self) })
            var ran: [String] = []
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    _ = try transaction.queryWithoutDeadline(PostgresQuery(unsafeSQL: statement))
                }
                _ = try transaction.query("INSERT INTO hikyaku_migration (name) VALUES (\(migration.name))")
                ran.append(migration.name)
            }
            return ran
        }
    }
}
