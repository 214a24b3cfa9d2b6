package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Machine is an agent (or cscli) allowed to push alerts.
type Machine struct {
	ID            int64
	MachineID     string
	PasswordHash  string
	IPAddress     string
	IsValidated   bool
	AuthType      string
	Scenarios     string
	Version       string
	OSName        string
	OSVersion     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	LastPush      *time.Time
	LastHeartbeat *time.Time
}

const machineCols = `id, machine_id, password, ip_address, is_validated, auth_type, scenarios, version, os_name, os_version, created_at, updated_at, last_push, last_heartbeat`

func scanMachine(sc interface{ Scan(...any) error }) (*Machine, error) {
	var m Machine
	var created, updated int64
	var push, hb sql.NullInt64
	if err := sc.Scan(&m.ID, &m.MachineID, &m.PasswordHash, &m.IPAddress, &m.IsValidated, &m.AuthType,
		&m.Scenarios, &m.Version, &m.OSName, &m.OSVersion, &created, &updated, &push, &hb); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = time.Unix(0, created), time.Unix(0, updated)
	m.LastPush, m.LastHeartbeat = nullTime(push), nullTime(hb)
	return &m, nil
}

// CreateMachine stores a new machine; with force an existing one is
// replaced (its password and validation reset). ErrExists otherwise.
func (s *Store) CreateMachine(ctx context.Context, m Machine, force bool) error {
	now := nowNS()
	if m.AuthType == "" {
		m.AuthType = "password"
	}
	return s.write(ctx, func(tx *wtx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM machines WHERE machine_id = ?`, m.MachineID).Scan(&id)
		switch {
		case err == nil && !force:
			return fmt.Errorf("user '%s': user already exist: %w", m.MachineID, ErrExists)
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE machines SET password = ?, is_validated = ?, auth_type = ?, ip_address = ?, updated_at = ? WHERE id = ?`,
				m.PasswordHash, m.IsValidated, m.AuthType, m.IPAddress, now, id)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("looking up machine %s: %w", m.MachineID, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO machines (machine_id, password, ip_address, is_validated, auth_type, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			m.MachineID, m.PasswordHash, m.IPAddress, m.IsValidated, m.AuthType, now, now)
		if err != nil {
			return fmt.Errorf("creating machine %s: %w", m.MachineID, err)
		}
		return nil
	})
}

const getMachineSQL = `SELECT ` + machineCols + ` FROM machines WHERE machine_id = ?`

// GetMachine returns one machine or ErrNotFound.
func (s *Store) GetMachine(ctx context.Context, machineID string) (*Machine, error) {
	// Every authenticated agent request reads its machine.
	st, err := s.readStmt(ctx, getMachineSQL)
	if err != nil {
		return nil, fmt.Errorf("reading machine %s: %w", machineID, err)
	}
	m, err := scanMachine(st.QueryRowContext(ctx, machineID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading machine %s: %w", machineID, err)
	}
	return m, nil
}

// ListMachines returns every machine ordered by id.
func (s *Store) ListMachines(ctx context.Context) ([]*Machine, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+machineCols+` FROM machines ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing machines: %w", err)
	}
	defer rows.Close()
	var out []*Machine
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("listing machines: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeleteMachine removes a machine; ErrNotFound when absent.
func (s *Store) DeleteMachine(ctx context.Context, machineID string) error {
	return s.write(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM machines WHERE machine_id = ?`, machineID)
		if err != nil {
			return fmt.Errorf("deleting machine %s: %w", machineID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("machine %s: %w", machineID, ErrNotFound)
		}
		return nil
	})
}

// ValidateMachine marks a registered machine as allowed to log in.
func (s *Store) ValidateMachine(ctx context.Context, machineID string) error {
	return s.write(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE machines SET is_validated = TRUE, updated_at = ? WHERE machine_id = ?`, nowNS(), machineID)
		if err != nil {
			return fmt.Errorf("validating machine %s: %w", machineID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("machine %s: %w", machineID, ErrNotFound)
		}
		return nil
	})
}

// MachineLoggedIn records what a login tells about the machine.
func (s *Store) MachineLoggedIn(ctx context.Context, machineID, ip, version string, scenarios []string) error {
	return s.write(ctx, func(tx *wtx) error {
		q := `UPDATE machines SET ip_address = ?, version = ?, updated_at = ?`
		args := []any{ip, version, nowNS()}
		if len(scenarios) > 0 {
			q += `, scenarios = ?`
			args = append(args, strings.Join(scenarios, ","))
		}
		args = append(args, machineID)
		_, err := tx.ExecContext(ctx, q+` WHERE machine_id = ?`, args...)
		return err
	})
}

// MachineHeartbeat records a heartbeat.
func (s *Store) MachineHeartbeat(ctx context.Context, machineID string) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE machines SET last_heartbeat = ? WHERE machine_id = ?`, nowNS(), machineID)
		return err
	})
}

// PruneMachines deletes machines without a heartbeat (or never validated,
// with notValidatedOnly) since before; it returns the names deleted.
func (s *Store) PruneMachines(ctx context.Context, before time.Time, notValidatedOnly bool) ([]string, error) {
	var names []string
	err := s.write(ctx, func(tx *wtx) error {
		q := `SELECT machine_id FROM machines WHERE `
		var args []any
		if notValidatedOnly {
			q += `is_validated = FALSE AND created_at < ?`
		} else {
			q += `COALESCE(last_heartbeat, updated_at) < ?`
		}
		args = append(args, before.UnixNano())
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `DELETE FROM machines WHERE machine_id = ?`, n); err != nil {
				return err
			}
		}
		return nil
	})
	return names, err
}
