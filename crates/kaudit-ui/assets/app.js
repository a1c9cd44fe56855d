// kaudit web UI: a small single-page application over the public JSON API (/api/v1).
// Every piece of data is inserted as text (never as HTML): audit events are attacker-controlled.
'use strict';

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
const PRIORITIES = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'];
const WINDOWS = [['15m', 15 * 60], ['1h', 3600], ['6h', 6 * 3600], ['24h', 86400], ['7d', 7 * 86400], ['30d', 30 * 86400], ['all', 0]];
const DEFAULT_WINDOW = '24h';

function prioBadge(p) {
  const i = Math.max(0, PRIORITIES.findIndex((x) => x.toLowerCase() === String(p).toLowerCase()));
  return h('span', { class: `prio prio-${i}`, text: p });
}

function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  if (isNaN(d)) return t;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function windowFrom(win) {
  const secs = (WINDOWS.find((w) => w[0] === (win || DEFAULT_WINDOW)) || WINDOWS[3])[1];
  return secs ? new Date(Date.now() - secs * 1000).toISOString() : undefined;
}

function toast(msg) {
  const t = $('#toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}

function emptyState(text) { return h('div', { class: 'empty', text }); }
function errorBox(err) { return h('p', { class: 'error', role: 'alert', text: `Error: ${err.message || err}` }); }

// ---------------------------------------------------------------- API client

const session = {
  token: sessionStorage.getItem('kaudit.token') || localStorage.getItem('kaudit.token') || '',
  role: null,
  isAdmin() { return this.role === 'admin'; },
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Authorization: `Bearer ${session.token}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'the kaudit server cannot be reached');
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (resp.status === 401 && path !== '/api/v1/whoami') {
    signOut('Your session has expired or the token was revoked: sign in again.');
    throw new ApiError(401, 'unauthorized');
  }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
  return data;
}

// Counts beside a search stop at this many: past it the server answers `exact: false`
// ("10,000+ events match") instead of counting every match, which on a large store would
// show the count seconds after the results.
const COUNT_LIMIT = 10000;

// "1,234 events match." or, when the count stopped at its limit, "10,000+ events match.".
function matchText(counted, what) {
  return `${counted.count.toLocaleString()}${counted.exact === false ? '+' : ''} ${what} match.`;
}

const API = {
  whoami: () => api('GET', '/api/v1/whoami'),
  alerts: (q) => api('GET', '/api/v1/alerts', { query: q }),
  alertsCount: (q) => api('GET', '/api/v1/alerts/count', { query: { ...q, limit: COUNT_LIMIT } }),
  alertsGroups: (q, field, limit = 10) => api('GET', '/api/v1/alerts/groups', { query: { ...q, field, limit } }),
  alertsHistogram: (q, interval) => api('GET', '/api/v1/alerts/histogram', { query: { ...q, interval_seconds: interval } }),
  events: (q) => api('GET', '/api/v1/events', { query: q }),
  event: (id) => api('GET', `/api/v1/events/${encodeURIComponent(id)}`),
  eventsCount: (q) => api('GET', '/api/v1/events/count', { query: { ...q, limit: COUNT_LIMIT } }),
  eventsGroups: (q, field, limit = 10) => api('GET', '/api/v1/events/groups', { query: { ...q, field, limit } }),
  eventsHistogram: (q, interval) => api('GET', '/api/v1/events/histogram', { query: { ...q, interval_seconds: interval } }),
  rules: () => api('GET', '/api/v1/rules'),
  policies: () => api('GET', '/api/v1/policies'),
  patchPolicy: (name, patch) => api('PATCH', `/api/v1/policies/${encodeURIComponent(name)}`, { body: patch }),
  ruleFiles: () => api('GET', '/api/v1/rule-files'),
  ruleFile: (name) => api('GET', `/api/v1/rule-files/${encodeURIComponent(name)}`),
  putRuleFile: (name, content) => api('PUT', `/api/v1/rule-files/${encodeURIComponent(name)}`, { body: { content } }),
  deleteRuleFile: (name) => api('DELETE', `/api/v1/rule-files/${encodeURIComponent(name)}`),
  testRules: (body) => api('POST', '/api/v1/rules/test', { body }),
  intakes: () => api('GET', '/api/v1/intakes'),
  createIntake: (name, cluster) => api('POST', '/api/v1/intakes', { body: { name, cluster } }),
  revokeIntake: (id) => api('DELETE', `/api/v1/intakes/${encodeURIComponent(id)}`),
};

const items = (page) => (Array.isArray(page) ? page : (page && page.items) || []);

// ---------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [page, qs] = raw.split('?');
  return { page: page || 'feed', params: Object.fromEntries(new URLSearchParams(qs || '')) };
}

function go(page, params = {}) {
  const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const qs = new URLSearchParams(clean).toString();
  const next = `#/${page}${qs ? `?${qs}` : ''}`;
  if (location.hash === next) route(); else location.hash = next;
}

const pages = { feed: pageFeed, activity: pageActivity, overview: pageOverview, rules: pageRules, intakes: pageIntakes };
let stopCurrent = null;

function route() {
  if (typeof stopCurrent === 'function') stopCurrent();
  stopCurrent = null;
  closePanel();
  const { page, params } = parseHash();
  const render = pages[page] || pageFeed;
  for (const a of document.querySelectorAll('.topbar nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const main = $('#main');
  main.replaceChildren();
  document.title = `kaudit · ${(document.querySelector(`.topbar nav a[data-page="${page}"]`) || {}).textContent || ''}`;
  // A page returns a function to stop its timers, or nothing.
  const stop = render(main, params);
  stopCurrent = typeof stop === 'function' ? stop : null;
}

// ---------------------------------------------------------------- panel

let panelReturnFocus = null;

function openPanel(title, ...content) {
  panelReturnFocus = document.activeElement;
  $('#panel-title').textContent = title;
  $('#panel-body').replaceChildren(...content);
  $('#panel').hidden = false;
  $('#panel-close').focus();
}

function closePanel() {
  if ($('#panel').hidden) return;
  $('#panel').hidden = true;
  if (panelReturnFocus && panelReturnFocus.focus) panelReturnFocus.focus();
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : String(v))]));
}

// ---------------------------------------------------------------- shared widgets

function field(label, input) {
  const id = `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), input);
}

function windowSelect(value) {
  return h('select', { name: 'window' }, WINDOWS.map(([w]) => h('option', { value: w, selected: w === (value || DEFAULT_WINDOW) }, w === 'all' ? 'all time' : `last ${w}`)));
}

function clickableRow(cells, onOpen) {
  const tr = h('tr', { tabindex: 0, onclick: onOpen, onkeydown: (e) => { if (e.key === 'Enter') onOpen(); } }, cells);
  return tr;
}

function table(headers, rows) {
  return h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, rows)));
}

function bars(groups, onPick) {
  const max = Math.max(1, ...groups.map((g) => g.count));
  if (!groups.length) return emptyState('Nothing in this window.');
  return h('div', { class: 'bars' }, groups.map((g) => {
    const label = g.value === null || g.value === undefined ? '(none)' : g.value === '' ? '(empty)' : g.value;
    return h('div', { class: 'bar' },
      onPick ? h('a', { href: '#', title: label, onclick: (e) => { e.preventDefault(); onPick(g.value); } }, label) : h('span', { class: 'label', title: label, text: label }),
      h('span', {}, h('span', { class: 'fill', style: `width:${(100 * g.count) / max}%` })),
      h('span', { class: 'mono', text: g.count.toLocaleString() }));
  }));
}

function chart(eventsHist, alertsHist, fromMs, toMs) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', '0 0 600 180');
  svg.setAttribute('role', 'img');
  const all = [...eventsHist.buckets, ...alertsHist.buckets];
  if (!all.length) return emptyState('No events in this window.');
  const interval = (eventsHist.interval_seconds || alertsHist.interval_seconds || 60) * 1000;
  const times = all.map((b) => Date.parse(b.start));
  // The x axis spans the selected window (or the data, for all time), at least 12 buckets wide.
  let t0 = fromMs !== undefined ? Math.min(fromMs, ...times) : Math.min(...times);
  let t1 = Math.max(toMs !== undefined ? toMs : 0, Math.max(...times) + interval);
  t0 = Math.floor(t0 / interval) * interval;
  const n = Math.max(12, Math.ceil((t1 - t0) / interval));
  t1 = t0 + n * interval;
  const w = 580 / n;
  const maxE = Math.max(1, ...eventsHist.buckets.map((b) => b.count));
  const maxA = Math.max(1, ...alertsHist.buckets.map((b) => b.count));
  const rect = (cls, b, max, half) => {
    const r = document.createElementNS(ns, 'rect');
    const i = Math.floor((Date.parse(b.start) - t0) / interval);
    const height = Math.max(1, (150 * b.count) / max);
    const bw = Math.max(1, w / 2 - 0.5);
    r.setAttribute('class', cls);
    r.setAttribute('x', 10 + i * w + half * (w / 2));
    r.setAttribute('width', bw);
    r.setAttribute('y', 160 - height);
    r.setAttribute('height', height);
    const title = document.createElementNS(ns, 'title');
    title.textContent = `${fmtTime(b.start)}: ${b.count} ${cls}`;
    r.append(title);
    svg.append(r);
  };
  eventsHist.buckets.forEach((b) => rect('events', b, maxE, 0));
  alertsHist.buckets.forEach((b) => rect('alerts', b, maxA, 1));
  for (const [x, t] of [[10, t0], [590, t1]]) {
    const text = document.createElementNS(ns, 'text');
    text.setAttribute('x', x);
    text.setAttribute('y', 175);
    text.setAttribute('text-anchor', x < 300 ? 'start' : 'end');
    text.textContent = fmtTime(new Date(t).toISOString());
    svg.append(text);
  }
  svg.setAttribute('aria-label', `Events (peak ${maxE} per bucket) and alerts (peak ${maxA} per bucket) over time`);
  const width = interval >= 3600000 ? `${interval / 3600000} h` : interval >= 60000 ? `${Math.round(interval / 60000)} min` : `${interval / 1000} s`;
  return h('div', {}, svg, h('div', { class: 'legend' },
    h('span', {}, h('i', { style: 'background:#9db7d9' }), `events (peak ${maxE.toLocaleString()} per ${width})`),
    h('span', {}, h('i', { style: 'background:#b3261e' }), `alerts (peak ${maxA.toLocaleString()} per ${width}, own scale)`)));
}

function jsonBlock(value) {
  return h('pre', { tabindex: 0 }, JSON.stringify(value, null, 2));
}

// ---------------------------------------------------------------- events feed (alerts)

function alertQuery(p) {
  return {
    from: p.from || windowFrom(p.window), to: p.to, min_priority: p.min_priority, rule: p.rule, policy: p.policy,
    cluster: p.cluster, namespace: p.namespace, user: p.user,
  };
}

function pageFeed(main, params) {
  const form = h('form', { class: 'toolbar', 'aria-label': 'Filter alerts' },
    field('Window', windowSelect(params.window)),
    field('Min priority', h('select', { name: 'min_priority' }, h('option', { value: '' }, 'any'),
      PRIORITIES.map((p) => h('option', { value: p.toLowerCase(), selected: (params.min_priority || '') === p.toLowerCase() }, p)))),
    ...['rule', 'policy', 'cluster', 'namespace', 'user'].map((k) => field(k[0].toUpperCase() + k.slice(1), h('input', { name: k, value: params[k] || '', spellcheck: 'false' }))),
    field('Group by', h('select', { name: 'group' }, [['', 'none'], ['rule', 'rule'], ['policy', 'policy']].map(([v, t]) => h('option', { value: v, selected: (params.group || '') === v }, t)))),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    h('span', { class: 'switch' }, h('input', { type: 'checkbox', id: 'live', checked: params.live !== 'off' }), h('label', { for: 'live' }, 'Live')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    data.live = $('#live', form).checked ? undefined : 'off';
    go('feed', data);
  });
  const status = h('p', { class: 'muted', role: 'status' });
  const groupsBox = h('div');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Load older alerts');
  main.append(h('h1', {}, 'Events feed'), form, status, groupsBox,
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Priority', 'Rule', 'Cluster', 'Namespace', 'User', 'Output'].map((t) => h('th', { scope: 'col', text: t })))), tbody)),
    h('div', { class: 'pager' }, more));

  const q = alertQuery(params);
  const seen = new Set();
  let cursor = null;
  let newest = null;
  let stopped = false;

  const row = (a, fresh) => {
    seen.add(a.id);
    const tr = clickableRow([
      h('td', { class: 'mono', text: fmtTime(a.time) }), h('td', {}, prioBadge(a.priority)), h('td', { text: a.rule }),
      h('td', { text: a.cluster }), h('td', { text: a.namespace || '' }), h('td', { text: a.user || '' }),
      h('td', { class: 'wrap', text: a.output }),
    ], () => showAlert(a));
    if (fresh) tr.classList.add('fresh');
    return tr;
  };

  const loadPage = async () => {
    try {
      const page = await API.alerts({ ...q, cursor, limit: 100 });
      const list = items(page);
      if (!newest && list.length) newest = list[0].time;
      tbody.append(...list.filter((a) => !seen.has(a.id)).map((a) => row(a, false)));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      if (!tbody.children.length) tbody.append(h('tr', {}, h('td', { colspan: 7 }, emptyState('No alerts match these filters in this window.'))));
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };

  const loadCounts = async () => {
    try {
      const c = await API.alertsCount(q);
      status.textContent = matchText(c, 'alerts');
      if (params.group) {
        const g = await API.alertsGroups(q, params.group, 20);
        groupsBox.replaceChildren(h('div', { class: 'card' }, h('h2', {}, `Alerts by ${params.group}`), bars(g.groups, (v) => go('feed', { ...params, [params.group]: v || '', group: '' }))));
      }
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };

  const poll = async () => {
    if (stopped || params.live === 'off') return;
    try {
      const page = await API.alerts({ ...q, from: newest || q.from, limit: 200 });
      const fresh = items(page).filter((a) => !seen.has(a.id));
      if (fresh.length) {
        const emptyRow = tbody.querySelector('.empty');
        if (emptyRow) tbody.replaceChildren();
        newest = fresh[0].time;
        tbody.prepend(...fresh.map((a) => row(a, true)));
        loadCounts();
      }
    } catch (err) { /* the next poll retries; errors show on explicit actions */ }
  };

  more.addEventListener('click', loadPage);
  loadPage();
  loadCounts();
  const timer = setInterval(poll, 3000);
  return () => { stopped = true; clearInterval(timer); };
}

async function showAlert(a) {
  const objectLink = a.output_fields && (a.output_fields['ka.target.name'] || a.output_fields['ka.target.resource']);
  const eventBox = h('div', {}, h('p', { class: 'muted', text: 'Loading the audit event…' }));
  openPanel(a.rule,
    h('p', {}, prioBadge(a.priority), ' ', h('span', { class: 'badge', text: a.policy })),
    h('pre', { class: 'wrap' }, a.output),
    kv([['Time', fmtTime(a.time)], ['Cluster', a.cluster], ['Namespace', a.namespace], ['User', a.user], ['Audit ID', a.audit_id], ['Tags', (a.tags || []).join(', ')]]),
    h('h3', {}, 'Fields'),
    kv(Object.entries(a.output_fields || {}).map(([k, v]) => [k, v === null ? '<NA>' : Array.isArray(v) ? `(${v.join(',')})` : String(v)])),
    h('p', {},
      a.user ? h('a', { href: `#/activity?${new URLSearchParams({ user: a.user, window: '7d' })}` }, 'Activity of this user') : null,
      a.user && objectLink ? ' · ' : null,
      objectLink ? h('a', { href: `#/activity?${new URLSearchParams(Object.fromEntries(Object.entries({ resource: a.output_fields['ka.target.resource'], namespace: a.output_fields['ka.target.namespace'], name: a.output_fields['ka.target.name'], window: '7d', view: 'timeline' }).filter(([, v]) => v)))}` }, 'Everything done to this object') : null),
    h('h3', {}, 'Audit event'), eventBox);
  try {
    const ev = await API.event(a.event_id);
    eventBox.replaceChildren(jsonBlock(ev.event));
  } catch (err) { eventBox.replaceChildren(errorBox(err)); }
}

// ---------------------------------------------------------------- activity audit

const EVENT_FILTERS = [
  ['cluster', 'Cluster'], ['user', 'User'], ['group', 'Group'], ['verb', 'Verb'], ['resource', 'Resource'],
  ['subresource', 'Subresource'], ['namespace', 'Namespace'], ['name', 'Name'], ['source_ip', 'Source IP'],
  ['user_agent', 'User agent'], ['code', 'Response code'], ['decision', 'Decision'], ['q', 'Text in URI or name'],
];

function eventQuery(p) {
  const q = { from: p.from || windowFrom(p.window), to: p.to };
  for (const [k] of EVENT_FILTERS) if (p[k]) q[k] = p[k];
  if (p.user && p.user_match === 'prefix') { q.user_prefix = p.user; delete q.user; }
  return q;
}

function pageActivity(main, params) {
  const form = h('form', { class: 'toolbar', 'aria-label': 'Search events' },
    field('Window', windowSelect(params.window)),
    ...EVENT_FILTERS.map(([k, label]) => {
      if (k === 'decision') return field(label, h('select', { name: k }, ['', 'allow', 'forbid'].map((v) => h('option', { value: v, selected: (params[k] || '') === v }, v || 'any'))));
      return field(label, h('input', { name: k, value: params[k] || '', spellcheck: 'false', inputmode: k === 'code' ? 'numeric' : undefined }));
    }),
    field('User match', h('select', { name: 'user_match' }, [['exact', 'exact'], ['prefix', 'prefix']].map(([v, t]) => h('option', { value: v, selected: (params.user_match || 'exact') === v }, t)))),
    field('View', h('select', { name: 'view' }, [['table', 'table'], ['timeline', 'timeline']].map(([v, t]) => h('option', { value: v, selected: (params.view || 'table') === v }, t)))),
    h('button', { type: 'submit', class: 'primary' }, 'Search'),
    h('button', { type: 'button', onclick: () => go('activity', {}) }, 'Clear'));
  form.addEventListener('submit', (e) => { e.preventDefault(); go('activity', Object.fromEntries(new FormData(form))); });
  const status = h('p', { class: 'muted', role: 'status' });
  const results = h('div');
  const prev = h('button', { type: 'button', disabled: true }, 'Newer');
  const next = h('button', { type: 'button', disabled: true }, 'Older');
  const pageLabel = h('span', { class: 'muted' });
  main.append(h('h1', {}, 'Activity audit'), form, status, results, h('div', { class: 'pager' }, prev, next, pageLabel));

  const q = eventQuery(params);
  const cursors = [null];
  let at = 0;
  const load = async () => {
    results.replaceChildren(h('p', { class: 'muted', text: 'Searching…' }));
    try {
      const page = await API.events({ ...q, cursor: cursors[at], limit: 100 });
      const list = items(page);
      cursors[at + 1] = page.next_cursor || null;
      prev.disabled = at === 0;
      next.disabled = !page.next_cursor;
      pageLabel.textContent = `page ${at + 1}`;
      if (!list.length) { results.replaceChildren(emptyState('No events match. Widen the window or remove a filter.')); return; }
      if (params.view === 'timeline') {
        results.replaceChildren(h('ol', { class: 'timeline' }, list.map((e) => h('li', { class: e.decision === 'forbid' ? 'forbid' : '' },
          h('span', { class: 'mono', text: fmtTime(e.time) }), ' ', h('strong', { text: e.user || '(no user)' }), ` ${e.verb || ''} `,
          h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); showEvent(e.id); } }, [e.resource, e.subresource].filter(Boolean).join('/') || e.request_uri || ''),
          e.namespace ? ` in ${e.namespace}` : '', e.name ? ` ${e.name}` : '', ` → ${e.response_code || ''} ${e.decision || ''}`))));
      } else {
        results.replaceChildren(table(['Time', 'Cluster', 'User', 'Verb', 'Resource', 'Namespace / name', 'Code', 'Decision', 'Source IP'],
          list.map((e) => clickableRow([
            h('td', { class: 'mono', text: fmtTime(e.time) }), h('td', { text: e.cluster }), h('td', { class: 'wrap', text: e.user || '' }),
            h('td', { text: e.verb || '' }), h('td', { text: [e.resource, e.subresource].filter(Boolean).join('/') || e.request_uri || '' }),
            h('td', { class: 'wrap', text: [e.namespace, e.name].filter(Boolean).join(' / ') }), h('td', { text: e.response_code || '' }),
            h('td', { text: e.decision || '' }), h('td', { class: 'mono', text: (e.source_ips || [])[0] || '' }),
          ], () => showEvent(e.id)))));
      }
    } catch (err) { results.replaceChildren(errorBox(err)); }
  };
  prev.addEventListener('click', () => { if (at > 0) { at -= 1; load(); } });
  next.addEventListener('click', () => { if (cursors[at + 1]) { at += 1; load(); } });
  load();
  API.eventsCount(q).then((c) => { status.textContent = matchText(c, 'events'); }).catch((err) => status.replaceChildren(errorBox(err)));
  return null;
}

async function showEvent(id) {
  openPanel('Audit event', h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const d = await API.event(id);
    const ev = d.event || {};
    const tabs = [['Request object', ev.requestObject], ['Response object', ev.responseObject], ['Full event', ev]].filter(([, v]) => v !== undefined);
    const body = h('div');
    const tabBar = h('div', { class: 'tabs', role: 'tablist' }, tabs.map(([name, value], i) => h('button', {
      type: 'button', role: 'tab', 'aria-selected': i === 0 ? 'true' : 'false',
      onclick: (e) => { for (const b of tabBar.children) b.setAttribute('aria-selected', 'false'); e.target.setAttribute('aria-selected', 'true'); body.replaceChildren(jsonBlock(value)); },
    }, name)));
    body.replaceChildren(jsonBlock(tabs[0][1]));
    const objectParams = Object.fromEntries(Object.entries({ resource: d.resource, namespace: d.namespace, name: d.name, window: '30d', view: 'timeline' }).filter(([, v]) => v));
    $('#panel-title').textContent = `${d.verb || ''} ${[d.resource, d.subresource].filter(Boolean).join('/') || d.request_uri || ''}`;
    $('#panel-body').replaceChildren(
      kv([['Time', fmtTime(d.time)], ['Cluster', d.cluster], ['User', d.user], ['Groups', (d.groups || []).join(', ')], ['Impersonated user', d.impersonated_user],
        ['Verb', d.verb], ['Request URI', d.request_uri], ['Namespace', d.namespace], ['Name', d.name], ['Response code', d.response_code],
        ['Decision', d.decision], ['Source IPs', (d.source_ips || []).join(', ')], ['User agent', d.user_agent], ['Stage', d.stage], ['Level', d.level], ['Audit ID', d.audit_id]]),
      h('p', {},
        d.user ? h('a', { href: `#/activity?${new URLSearchParams({ user: d.user, window: '7d', view: 'timeline' })}` }, 'Timeline of this user') : null,
        d.user && d.name ? ' · ' : null,
        d.name ? h('a', { href: `#/activity?${new URLSearchParams(objectParams)}` }, 'Timeline of this object') : null),
      tabBar, body);
  } catch (err) { $('#panel-body').replaceChildren(errorBox(err)); }
}

// ---------------------------------------------------------------- overview

function pageOverview(main, params) {
  const form = h('form', { class: 'toolbar', 'aria-label': 'Overview window' },
    field('Window', windowSelect(params.window)), field('Cluster', h('input', { name: 'cluster', value: params.cluster || '' })),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (e) => { e.preventDefault(); go('overview', Object.fromEntries(new FormData(form))); });
  const q = { from: windowFrom(params.window), cluster: params.cluster };
  const card = (title) => { const body = h('div', {}, h('p', { class: 'muted', text: 'Loading…' })); return [h('section', { class: 'card' }, h('h2', {}, title), body), body]; };
  const [chartCard, chartBody] = card('Events and alerts over time');
  const [prioCard, prioBody] = card('Alerts by priority');
  const [rulesCard, rulesBody] = card('Top rules');
  const [usersCard, usersBody] = card('Top users');
  const [resCard, resBody] = card('Top resources');
  const [ipCard, ipBody] = card('Top source IPs');
  main.append(h('h1', {}, 'Overview'), form, chartCard, h('div', { class: 'grid', style: 'margin-top:12px' }, prioCard, rulesCard, usersCard, resCard, ipCard));
  const fill = (box, promise, onPick) => promise.then((g) => box.replaceChildren(bars(g.groups, onPick))).catch((err) => box.replaceChildren(errorBox(err)));
  // A fixed window gives about 60 buckets; for all time the server fits the width to the data.
  const secs = (WINDOWS.find((w) => w[0] === (params.window || DEFAULT_WINDOW)) || WINDOWS[3])[1];
  const interval = secs ? Math.max(60, Math.round(secs / 60)) : undefined;
  API.eventsHistogram(q, interval)
    .then((e) => API.alertsHistogram(q, e.interval_seconds).then((a) => chartBody.replaceChildren(chart(e, a, q.from ? Date.parse(q.from) : undefined, Date.now()))))
    .catch((err) => chartBody.replaceChildren(errorBox(err)));
  fill(prioBody, API.alertsGroups(q, 'priority', 8), (v) => go('feed', { window: params.window, cluster: params.cluster, min_priority: (v || '').toLowerCase() }));
  fill(rulesBody, API.alertsGroups(q, 'rule', 10), (v) => go('feed', { window: params.window, cluster: params.cluster, rule: v }));
  fill(usersBody, API.eventsGroups(q, 'user', 10), (v) => go('activity', { window: params.window, cluster: params.cluster, user: v }));
  fill(resBody, API.eventsGroups(q, 'resource', 10), (v) => go('activity', { window: params.window, cluster: params.cluster, resource: v }));
  fill(ipBody, API.eventsGroups(q, 'source_ip', 10), (v) => go('activity', { window: params.window, cluster: params.cluster, source_ip: v }));
  return null;
}

// ---------------------------------------------------------------- rules and policies

function pageRules(main, params) {
  const tab = params.tab || 'policies';
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, [['policies', 'Policies'], ['rules', 'Rules'], ['files', 'Custom rule files']].map(([k, t]) =>
    h('button', { type: 'button', role: 'tab', 'aria-selected': tab === k ? 'true' : 'false', onclick: () => go('rules', { tab: k }) }, t)));
  const body = h('div');
  main.append(...[h('h1', {}, 'Rules & policies'), session.isAdmin() ? null : h('p', { class: 'muted', text: 'Read-only: sign in with an admin token to change policies and rule files.' }), tabs, body].filter(Boolean));
  if (tab === 'rules') renderRules(body);
  else if (tab === 'files') renderRuleFiles(body, params);
  else renderPolicies(body);
  return null;
}

async function renderPolicies(box) {
  box.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const list = await API.policies();
    if (!list.length) { box.replaceChildren(emptyState('No policies.')); return; }
    box.replaceChildren(table(['Enabled', 'Policy', 'Rules', 'Scope'], list.map((p) => {
      const toggle = h('input', { type: 'checkbox', checked: p.enabled, disabled: !session.isAdmin(), 'aria-label': `Enable policy ${p.name}` });
      toggle.addEventListener('click', (e) => e.stopPropagation());
      toggle.addEventListener('change', async () => {
        try { await API.patchPolicy(p.name, { enabled: toggle.checked }); toast(`Policy ${p.name} ${toggle.checked ? 'enabled' : 'disabled'}`); }
        catch (err) { toggle.checked = !toggle.checked; toast(`Error: ${err.message}`); }
      });
      const rules = p.rules || {};
      const sel = [...(rules.names || []).map((n) => `rule ${n}`), ...(rules.tags || []).map((t) => `tag ${t}`), ...(rules.files || []).map((f) => `file ${f}`)].join(', ') || 'all rules';
      const scope = (p.scope || []).map((s) => `${(s.operations || ['*']).join('|')} ${(s.apiGroups || ['*']).join('|')}/${(s.resources || ['*']).join('|')} (${s.scope || '*'})`).join('; ') || 'everything';
      return h('tr', {}, h('td', {}, h('span', { class: 'switch' }, toggle)), h('td', {}, h('strong', { text: p.name }), p.builtin ? ' ' : null, p.builtin ? h('span', { class: 'badge', text: 'built-in' }) : null, h('div', { class: 'muted', text: p.description || '' })),
        h('td', { class: 'wrap', text: sel }), h('td', { class: 'wrap mono', text: scope }));
    })));
  } catch (err) { box.replaceChildren(errorBox(err)); }
}

async function renderRules(box) {
  box.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const list = await API.rules();
    const filter = h('input', { type: 'search', placeholder: 'Filter by name or tag', 'aria-label': 'Filter rules' });
    const tbody = h('tbody');
    const render = () => {
      const f = filter.value.toLowerCase();
      tbody.replaceChildren(...list.filter((r) => !f || r.name.toLowerCase().includes(f) || (r.tags || []).some((t) => t.toLowerCase().includes(f))).map((r) => clickableRow([
        h('td', { text: r.name }), h('td', {}, prioBadge(r.priority)), h('td', { text: r.file }), h('td', { class: 'wrap', text: (r.tags || []).join(', ') }),
        h('td', { text: (r.policies || []).join(', ') }), h('td', { text: r.active ? 'active' : r.enabled ? 'not in an enabled policy' : 'disabled' }),
      ], () => openPanel(r.name, kv([['Priority', prioBadge(r.priority)], ['File', r.file], ['Tags', (r.tags || []).join(', ')], ['Policies', (r.policies || []).join(', ')], ['State', r.active ? 'active' : 'inactive']]),
        h('h3', {}, 'Condition'), h('pre', {}, r.condition), h('h3', {}, 'Output'), h('pre', {}, r.output)))));
    };
    filter.addEventListener('input', render);
    render();
    box.replaceChildren(h('div', { class: 'toolbar' }, filter, h('span', { class: 'muted', text: `${list.length} rules` })),
      h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Rule', 'Priority', 'File', 'Tags', 'Policies', 'State'].map((t) => h('th', { scope: 'col', text: t })))), tbody)));
  } catch (err) { box.replaceChildren(errorBox(err)); }
}

const NEW_FILE_TEMPLATE = `# Custom rules, in the Falco rules language (source: k8s_audit).
- rule: Example - configmap changed in production
  desc: A configmap was changed in the prod namespace.
  condition: ka.verb in (update, patch) and ka.target.resource = configmaps and ka.target.namespace = prod
  output: configmap %ka.target.name changed by %ka.user.name (verb=%ka.verb)
  priority: NOTICE
  source: k8s_audit
  tags: [k8s, custom]
`;

async function renderRuleFiles(box, params) {
  box.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
  let files;
  try { files = await API.ruleFiles(); } catch (err) { box.replaceChildren(errorBox(err)); return; }
  const list = h('div', { class: 'card' }, h('h2', {}, 'Files'),
    files.length ? h('ul', {}, files.map((f) => h('li', {}, h('a', { href: `#/rules?${new URLSearchParams({ tab: 'files', file: f.name })}` }, f.name), h('span', { class: 'muted', text: ` · ${f.size} bytes · ${fmtTime(f.updated_at)}` })))) : emptyState('No custom rule files yet.'),
    session.isAdmin() ? h('button', { type: 'button', onclick: () => go('rules', { tab: 'files', file: '', new: '1' }) }, 'New file') : null);
  const editorBox = h('div', { class: 'card' });
  box.replaceChildren(h('div', { class: 'grid' }, list), editorBox);
  if (!params.file && !params.new) { editorBox.replaceChildren(h('p', { class: 'muted', text: 'Pick a file to view or edit it.' })); return; }
  let content = NEW_FILE_TEMPLATE;
  if (params.file) {
    try { content = (await API.ruleFile(params.file)).content; } catch (err) { editorBox.replaceChildren(errorBox(err)); return; }
  }
  const name = h('input', { value: params.file || 'custom_rules.yaml', disabled: Boolean(params.file) || !session.isAdmin(), 'aria-label': 'File name' });
  const area = h('textarea', { spellcheck: 'false', 'aria-label': 'Rules file content', readonly: !session.isAdmin() });
  area.value = content;
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const message = h('div', { role: 'alert' });
  let badLine = 0;
  const renderGutter = () => {
    const n = area.value.split('\n').length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) => [i + 1 === badLine ? h('span', { class: 'bad', text: String(i + 1) }) : String(i + 1), '\n']).flat());
  };
  area.addEventListener('input', renderGutter);
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  renderGutter();
  const showError = (err) => {
    const m = /:(\d+):(\d+)/.exec(err.message || '');
    badLine = m ? Number(m[1]) : 0;
    renderGutter();
    message.replaceChildren(h('p', { class: 'error', text: m ? `Line ${m[1]}, column ${m[2]}: ${err.message}` : `Error: ${err.message}` }));
    if (badLine) {
      const lines = area.value.split('\n');
      const offset = lines.slice(0, badLine - 1).reduce((s, l) => s + l.length + 1, 0) + Math.max(0, (m ? Number(m[2]) : 1) - 1);
      area.focus();
      area.setSelectionRange(offset, Math.min(area.value.length, offset + 1));
    }
  };
  const save = h('button', { type: 'button', class: 'primary', disabled: !session.isAdmin() }, 'Save and reload rules');
  save.addEventListener('click', async () => {
    badLine = 0; renderGutter(); message.replaceChildren();
    try {
      await API.putRuleFile(name.value.trim(), area.value);
      message.replaceChildren(h('p', { class: 'ok', text: 'Saved: the running rules now include this file.' }));
      if (!params.file) go('rules', { tab: 'files', file: name.value.trim() });
    } catch (err) { showError(err); }
  });
  const del = params.file && session.isAdmin() ? h('button', { type: 'button', class: 'danger' }, 'Delete file') : null;
  if (del) del.addEventListener('click', async () => {
    if (!confirm(`Delete ${params.file}? Its rules stop running.`)) return;
    try { await API.deleteRuleFile(params.file); toast(`Deleted ${params.file}`); go('rules', { tab: 'files' }); } catch (err) { showError(err); }
  });
  const testWindow = windowSelect('24h');
  const testOut = h('div');
  const test = h('button', { type: 'button' }, 'Test on stored events');
  test.addEventListener('click', async () => {
    testOut.replaceChildren(h('p', { class: 'muted', text: 'Running the rules over stored events…' }));
    badLine = 0; renderGutter(); message.replaceChildren();
    try {
      const r = await API.testRules({ content: area.value, from: windowFrom(testWindow.value), limit: 200 });
      const alerts = r.alerts || [];
      testOut.replaceChildren(h('p', { class: 'muted', text: `${(r.scanned || 0).toLocaleString()} events scanned, ${alerts.length}${r.truncated ? '+' : ''} would have fired.` }),
        alerts.length ? table(['Time', 'Priority', 'Rule', 'Output'], alerts.map((a) => clickableRow([
          h('td', { class: 'mono', text: fmtTime(a.time) }), h('td', {}, prioBadge(a.priority)), h('td', { text: a.rule }), h('td', { class: 'wrap', text: a.output })],
        () => a.event_id && showEvent(a.event_id)))) : emptyState('Nothing would have fired in this window.'));
    } catch (err) { testOut.replaceChildren(); showError(err); }
  });
  editorBox.replaceChildren(h('h2', {}, params.file ? `Edit ${params.file}` : 'New rule file'),
    field('File name', name), h('div', { class: 'editor' }, gutter, area), message,
    h('div', { class: 'toolbar', style: 'margin-top:8px' }, save, del, field('Test window', testWindow), test), testOut);

}

// ---------------------------------------------------------------- intakes

async function pageIntakes(main) {
  const box = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
  const created = h('div', { role: 'status' });
  const form = h('form', { class: 'toolbar card', 'aria-label': 'Create an intake' },
    field('Name', h('input', { name: 'name', required: true })), field('Cluster', h('input', { name: 'cluster', required: true })),
    h('button', { type: 'submit', class: 'primary' }, 'Create intake key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    try {
      const r = await API.createIntake(d.name.trim(), d.cluster.trim());
      created.replaceChildren(h('div', { class: 'card' }, h('p', {}, h('strong', {}, 'Intake key for ', r.intake.name, ' (cluster ', r.intake.cluster, '). '), 'It is shown only once: store it now.'),
        h('pre', { tabindex: 0 }, r.key), h('button', { type: 'button', onclick: () => navigator.clipboard && navigator.clipboard.writeText(r.key).then(() => toast('Copied')) }, 'Copy')));
      form.reset();
      load();
    } catch (err) { created.replaceChildren(errorBox(err)); }
  });
  main.append(h('h1', {}, 'Intakes'), session.isAdmin() ? form : h('p', { class: 'muted', text: 'Read-only: sign in with an admin token to create or revoke intake keys.' }), created, box);
  const load = async () => {
    try {
      const list = await API.intakes();
      if (!list.length) { box.replaceChildren(emptyState('No intakes yet.')); return; }
      box.replaceChildren(table(['Name', 'Cluster', 'Created', 'Last event', 'Events last hour', 'State', ''], list.map((i) => {
        const revoke = session.isAdmin() && !i.revoked_at ? h('button', { type: 'button', class: 'danger' }, 'Revoke') : null;
        if (revoke) revoke.addEventListener('click', async (e) => {
          e.stopPropagation();
          if (!confirm(`Revoke intake ${i.name}? Clusters using its key are refused from now on.`)) return;
          try { await API.revokeIntake(i.id); toast(`Revoked ${i.name}`); load(); } catch (err) { toast(`Error: ${err.message}`); }
        });
        return h('tr', {}, h('td', { text: i.name }), h('td', { text: i.cluster }), h('td', { class: 'mono', text: fmtTime(i.created_at) }),
          h('td', { class: 'mono', text: i.last_event_at ? fmtTime(i.last_event_at) : 'never' }), h('td', { text: (i.events_last_hour || 0).toLocaleString() }),
          h('td', { text: i.revoked_at ? `revoked ${fmtTime(i.revoked_at)}` : 'active' }), h('td', {}, revoke));
      })));
    } catch (err) { box.replaceChildren(errorBox(err)); }
  };
  load();
  return null;
}

// ---------------------------------------------------------------- sign-in

function signOut(message) {
  sessionStorage.removeItem('kaudit.token');
  localStorage.removeItem('kaudit.token');
  session.token = '';
  session.role = null;
  $('#app').hidden = true;
  $('#signin').hidden = false;
  const err = $('#signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('#signin-token').focus();
}

async function start() {
  try {
    const me = await api('GET', '/api/v1/whoami');
    session.role = me.role;
    $('#whoami').textContent = me.role;
    $('#signin').hidden = true;
    $('#app').hidden = false;
    route();
    return true;
  } catch (err) {
    signOut(session.token ? (err.status === 401 ? 'That token is not valid (or was revoked).' : `Error: ${err.message}`) : '');
    return false;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    session.token = $('#signin-token').value.trim();
    if (await start()) {
      (($('#signin-remember').checked) ? localStorage : sessionStorage).setItem('kaudit.token', session.token);
      $('#signin-token').value = '';
    }
  });
  $('#signout').addEventListener('click', () => signOut(''));
  $('#panel-close').addEventListener('click', closePanel);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closePanel(); });
  window.addEventListener('hashchange', () => { if (session.role) route(); });
  if (session.token) start(); else signOut('');
});
