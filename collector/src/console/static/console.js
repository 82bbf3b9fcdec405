// The console's only script: keeps the correlations board live.
//
// It listens to the correlation stream (server-sent events from /api/v1/correlations/watch,
// under the same session and view as the page) and writes each opened or escalated
// correlation into the board's table. Safe by construction: it writes with textContent and
// builds links with encodeURIComponent; nothing it receives is ever parsed as HTML.
'use strict';

(function () {
  const board = document.getElementById('board');
  if (!board || !window.EventSource) {
    return;
  }
  const status = document.getElementById('live-status');
  const changes = {
    opened: 'new', escalated: 'spreading', closed: 'closed', closed_false_positive: 'false positive', reduced: 'reduced',
  };
  const classes = {
    opened: 'new', escalated: 'spreading', closed: 'closed', closed_false_positive: 'closed', reduced: 'spreading',
  };

  function text(value) {
    if (Array.isArray(value)) {
      return value.join(', ');
    }
    return value === null || value === undefined ? '' : String(value);
  }

  function upsert(change, row) {
    const table = document.getElementById(row.scope === 'campaign' ? 'campaigns' : 'board');
    if (!table) {
      return;
    }
    const columns = Array.from(table.tHead.rows[0].cells, (th) => th.dataset.column);
    const body = table.tBodies[0];
    const key = row.indicator + '#' + row.wave;
    let tr = Array.from(body.rows).find((r) => r.dataset.key === key);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.key = key;
      columns.forEach(() => tr.appendChild(document.createElement('td')));
    }
    columns.forEach((column, i) => {
      const td = tr.cells[i];
      td.textContent = '';
      const value = column === 'change' ? changes[change] || change : text(row[column]);
      const campaignLink = column === 'campaign' || (column === 'indicator' && row.scope === 'campaign');
      if ((column === 'indicator' || column === 'campaign') && value !== '') {
        const a = document.createElement('a');
        a.href = campaignLink
          ? '/campaign?name=' + encodeURIComponent(value)
          : '/indicator?value=' + encodeURIComponent(value);
        a.textContent = value;
        td.appendChild(a);
      } else {
        td.textContent = value;
      }
    });
    tr.className = 'live ' + (classes[change] || '');
    body.insertBefore(tr, body.firstChild);
    const empty = document.getElementById(table.id + '-empty');
    if (empty) {
      empty.remove();
    }
  }

  const events = new EventSource('/api/v1/correlations/watch');
  Object.keys(changes).forEach((change) => {
    events.addEventListener(change, (event) => {
      let row;
      try {
        row = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      upsert(change, row);
    });
  });
  events.addEventListener('open', () => {
    status.textContent = 'live';
    status.className = 'live-on';
  });
  events.addEventListener('error', () => {
    // The browser retries lost connections by itself; a refusal (an ended session) is final.
    const closed = events.readyState === EventSource.CLOSED;
    status.textContent = closed ? 'not live: reload (or sign in again)' : 'reconnecting…';
    status.className = 'live-off';
  });
})();
