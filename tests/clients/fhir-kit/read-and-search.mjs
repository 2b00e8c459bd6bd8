// Drives the proxy with fhir-kit-client, a FHIR client library from npm, as an EHR integration
// would: book three appointments, read one back, search with paging, change one with If-Match
// (stale and current), a conditional update, and a POST _search. Prints one JSON object of what
// it saw; tests/api/fhir_client.rs checks it. Usage: node read-and-search.mjs BASE APPOINTMENT.json
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';

const [baseUrl, appointmentFile] = process.argv.slice(2);
const client = new Client({ baseUrl });
const template = JSON.parse(readFileSync(appointmentFile, 'utf8'));
const status = async (promise) => {
  try {
    await promise;
    return 200;
  } catch (error) {
    if (error.response) return error.response.status;
    throw error;
  }
};

const created = [];
for (const n of [1, 2, 3]) {
  const body = structuredClone(template);
  body.identifier[0].value = `KIT-${n}`;
  body.start = `2025-09-0${n}T09:00:00Z`;
  body.end = `2025-09-0${n}T09:30:00Z`;
  created.push(await client.create({ resourceType: 'Appointment', body }));
}
const read = await client.read({ resourceType: 'Appointment', id: created[0].id });
const first = await client.search({
  resourceType: 'Appointment',
  searchParams: { patient: 'Patient/pat-1001', date: ['ge2025-09-01', 'lt2025-10-01'], _count: 2 },
});
const second = await client.nextPage({ bundle: first });
const posted = await client.search({
  resourceType: 'Appointment',
  searchParams: { identifier: 'http://hospital.example.org/fhir/appointment-id|KIT-3' },
  options: { postSearch: true },
});
const moved = { ...read, start: '2025-09-01T10:00:00Z', end: '2025-09-01T10:30:00Z' };
const stale = await status(client.update({
  resourceType: 'Appointment', id: read.id, body: moved,
  options: { headers: { 'If-Match': 'W/"0000000000000000"' } },
}));
const updated = await client.update({
  resourceType: 'Appointment', id: read.id, body: moved,
  options: { headers: { 'If-Match': `W/"${read.meta.versionId}"` } },
});
const cancelled = await client.update({
  resourceType: 'Appointment',
  searchParams: { identifier: 'http://hospital.example.org/fhir/appointment-id|KIT-2' },
  body: { ...created[1], status: 'cancelled' },
});
const reread = await client.read({ resourceType: 'Appointment', id: created[1].id });
const ids = (bundle) => (bundle.entry || []).map((e) => e.resource.id);
console.log(JSON.stringify({
  created: created.map((a) => a.id),
  read: { id: read.id, status: read.status, versionId: read.meta.versionId, start: read.start },
  first: { ids: ids(first), total: first.total, next: (first.link || []).some((l) => l.relation === 'next') },
  second: { ids: ids(second), next: (second.link || []).some((l) => l.relation === 'next') },
  posted: ids(posted),
  stale,
  updated: { id: updated.id, start: updated.start },
  cancelled: { id: cancelled.id, status: cancelled.status, reread: reread.status },
}));
