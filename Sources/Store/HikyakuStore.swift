/// Every capability of the store together: what the server is given, on
/// either engine (`SQLiteStore`, the embedded default; `PostgresStore`, the
/// shared one). A piece of the server that needs less takes only what it
/// uses (docs/storage.md).
public typealias HikyakuStore = AccountStore & SuppressionList & APIKeyStore & DKIMKeyStore & ReturnPathStore & UsageLedger
    & TemplateStore & UnsubscribeGroupStore & ConsoleUserStore & WebhookStore & ConfigurationSetStore & NodeRegistry
    & ContactBook & SegmentStore & ContactImportStore & ContactActivityLog & CampaignStore
