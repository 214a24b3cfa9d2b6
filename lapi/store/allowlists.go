package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AllowlistItemRow is one stored allowlist entry.
type AllowlistItemRow struct {
	ID          int64
	Value       string
	Description string
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	Range       Range
}

// AllowlistRow is a named allowlist with its entries.
type AllowlistRow struct {
	ID          int64
	Name        string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Items       []AllowlistItemRow
}

// HostAllowlistName names the built-in allowlist: netaddr's protected set
// (loopback, link-local, IPv6 multicast and the host's own addresses). No
// decision may cover it, whoever sends it; --bypass-allowlist skips user
// allowlists only. It is computed, never stored.
const HostAllowlistName = "rampart-host"

func bumpAllowlists(tx *wtx) error {
	_, err := tx.ExecContext(tx.ctx, `UPDATE counters SET value = value + 1 WHERE name = 'allowlists'`)
	return err
}

// AllowlistsVersion changes whenever an allowlist changes, so the LAPI can
// cache them and still see cscli's direct edits.
func (s *Store) AllowlistsVersion(ctx context.Context) (int64, error) {
	// Every push asks.
	st, err := s.readStmt(ctx, `SELECT value FROM counters WHERE name = 'allowlists'`)
	if err != nil {
		return 0, err
	}
	var v int64
	err = st.QueryRowContext(ctx).Scan(&v)
	return v, err
}

// CreateAllowlist creates an empty allowlist; ErrExists if the name is taken.
func (s *Store) CreateAllowlist(ctx context.Context, name, description string) error {
	now := nowNS()
	return s.write(ctx, func(tx *wtx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM allowlists WHERE name = ?`, name).Scan(&one)
		if err == nil {
			return fmt.Errorf("allowlist %s: %w", name, ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO allowlists (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)`, name, description, now, now); err != nil {
			return fmt.Errorf("creating allowlist %s: %w", name, err)
		}
		return bumpAllowlists(tx)
	})
}

// DeleteAllowlist removes an allowlist and its entries.
func (s *Store) DeleteAllowlist(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM allowlists WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("deleting allowlist %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("allowlist %s: %w", name, ErrNotFound)
		}
		return bumpAllowlists(tx)
	})
}

// AddAllowlistItems adds entries (IPs or CIDRs) to an allowlist.
func (s *Store) AddAllowlistItems(ctx context.Context, name string, values []string, description string, expires *time.Time) error {
	now := nowNS()
	ranges := make([]Range, len(values))
	for i, v := range values {
		r, err := ParseRange(v)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidData, err)
		}
		ranges[i] = r
	}
	return s.write(ctx, func(tx *wtx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM allowlists WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("allowlist %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		var exp any
		if expires != nil {
			exp = expires.UnixNano()
		}
		for i, v := range values {
			r := ranges[i]
			if _, err := tx.ExecContext(ctx, `DELETE FROM allowlist_items WHERE allowlist_id = ? AND value = ?`, id, v); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO allowlist_items (allowlist_id, value, description, created_at, expires_at, ip_size, start_ip, end_ip, start_suffix, end_suffix)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, v, description, now, exp, r.Size, r.Start, r.End, r.StartSuffix, r.EndSuffix); err != nil {
				return fmt.Errorf("adding %s to allowlist %s: %w", v, name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE allowlists SET updated_at = ? WHERE id = ?`, now, id); err != nil {
			return err
		}
		return bumpAllowlists(tx)
	})
}

// RemoveAllowlistItems removes entries by value; it returns how many went.
func (s *Store) RemoveAllowlistItems(ctx context.Context, name string, values []string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM allowlists WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("allowlist %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		for _, v := range values {
			res, err := tx.ExecContext(ctx, `DELETE FROM allowlist_items WHERE allowlist_id = ? AND value = ?`, id, v)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return bumpAllowlists(tx)
	})
	return n, err
}

// ListAllowlists returns every allowlist with its entries (expired ones included).
func (s *Store) ListAllowlists(ctx context.Context) ([]*AllowlistRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, description, created_at, updated_at FROM allowlists ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing allowlists: %w", err)
	}
	var out []*AllowlistRow
	byID := map[int64]*AllowlistRow{}
	for rows.Next() {
		var a AllowlistRow
		var c, u int64
		if err := rows.Scan(&a.ID, &a.Name, &a.Description, &c, &u); err != nil {
			rows.Close()
			return nil, err
		}
		a.CreatedAt, a.UpdatedAt = time.Unix(0, c), time.Unix(0, u)
		out = append(out, &a)
		byID[a.ID] = &a
	}
	rows.Close()
	items, err := s.r.QueryContext(ctx, `SELECT allowlist_id, id, value, description, created_at, expires_at, ip_size, start_ip, end_ip, start_suffix, end_suffix FROM allowlist_items ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing allowlist items: %w", err)
	}
	defer items.Close()
	for items.Next() {
		var lid int64
		var it AllowlistItemRow
		var c int64
		var exp sql.NullInt64
		if err := items.Scan(&lid, &it.ID, &it.Value, &it.Description, &c, &exp, &it.Range.Size, &it.Range.Start, &it.Range.End, &it.Range.StartSuffix, &it.Range.EndSuffix); err != nil {
			return nil, err
		}
		it.CreatedAt = time.Unix(0, c)
		it.ExpiresAt = nullTime(exp)
		if a := byID[lid]; a != nil {
			a.Items = append(a.Items, it)
		}
	}
	return out, items.Err()
}
