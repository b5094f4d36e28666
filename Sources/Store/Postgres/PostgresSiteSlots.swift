import Foundation
import PostgresNIO

extension PostgresStore: SiteSlotLeases {
    public func takeSiteSlot(site: String, limit: Int, lifetime: Int) throws -> Int? {
        guard limit > 0 else { return nil }
        let top = Int32(clamping: limit) - 1
        let seconds = Int32(clamping: max(1, lifetime))
        // The lowest slot no node holds (or whose holder let it lapse). This node's own rows count as held
        // whatever their time: after an outage one may still be a connection's; renewal clears the strays.
        // Two nodes after the same slot: the second waits for the first's insert, then takes none this time.
        let taken = try pool.query("""
            INSERT INTO site_slot (site, slot, node, expires_at)
            SELECT \(site), s, \(nodeName), now() + make_interval(secs => \(seconds))
            FROM generate_series(0, \(top)) AS s
            WHERE NOT EXISTS (SELECT 1 FROM site_slot h WHERE h.site = \(site) AND h.slot = s
                              AND (h.expires_at > now() OR h.node = \(nodeName)))
            ORDER BY s LIMIT 1
            ON CONFLICT (site, slot) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at
            WHERE site_slot.expires_at <= now() AND site_slot.node <> excluded.node
            RETURNING slot
            """).records.first
        return try taken.map { try $0.decode("slot", as: Int.self) }
    }

    public func releaseSiteSlot(site: String, slot: Int) throws {
        _ = try pool.query("DELETE FROM site_slot WHERE site = \(site) AND slot = \(Int32(clamping: slot)) AND node = \(nodeName)")
    }

    public func renewSiteSlots(_ held: [SiteSlot], lifetime: Int) throws {
        let sites = held.map(\.site), slots = held.map { Int32(clamping: $0.slot) }
        _ = try pool.query("""
            WITH held AS (SELECT * FROM unnest(\(sites)::text[], \(slots)::integer[]) AS h(site, slot)),
            stray AS (
                DELETE FROM site_slot s WHERE s.node = \(nodeName)
                AND NOT EXISTS (SELECT 1 FROM held h WHERE h.site = s.site AND h.slot = s.slot)
            )
            UPDATE site_slot s SET expires_at = now() + make_interval(secs => \(Int32(clamping: max(1, lifetime))))
            FROM held h WHERE s.node = \(nodeName) AND s.site = h.site AND s.slot = h.slot
            """)
    }

    public func releaseAllSiteSlots() throws {
        _ = try pool.query("DELETE FROM site_slot WHERE node = \(nodeName)")
    }
}
