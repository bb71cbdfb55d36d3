/**
 * The demo's small, realistic dataset: customers with PII, billing with card
 * numbers, orders, and an `ml` schema with training features. Deterministic
 * (seeded faker), generated as SQL so it loads with one round trip.
 */
import { Faker, en } from '@faker-js/faker';

const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;

export function demoDatasetSql(customers = 40): string {
  const faker = new Faker({ locale: [en] });
  faker.seed(20261127);
  const rows: string[] = [];
  const cards: string[] = [];
  const orders: string[] = [];
  const features: string[] = [];
  for (let id = 1; id <= customers; id++) {
    const first = faker.person.firstName();
    const last = faker.person.lastName();
    const email = faker.internet.email({ firstName: first, lastName: last }).toLowerCase();
    const phone = faker.phone.number({ style: 'national' });
    const ssn = `${faker.string.numeric(3)}-${faker.string.numeric(2)}-${faker.string.numeric(4)}`;
    rows.push(`(${id}, ${lit(`${first} ${last}`)}, ${lit(email)}, ${lit(phone)}, ${lit(ssn)}, ${lit(faker.location.city())})`);
    cards.push(`(${id}, ${id}, ${lit(faker.finance.creditCardNumber({ issuer: 'visa' }).replace(/-/g, ''))}, ${faker.number.int({ min: 10, max: 5000 })}.00)`);
    for (let k = 0; k < 3; k++) {
      orders.push(`(${id}, ${lit(faker.commerce.productName())}, ${faker.number.int({ min: 1, max: 500 })}.${faker.string.numeric(2)})`);
    }
    features.push(`(${id}, ${faker.number.float({ min: 0, max: 1, fractionDigits: 3 })}, ${faker.number.int({ min: 1, max: 60 })}, ${faker.datatype.boolean()})`);
  }
  return `
CREATE TABLE public.customers (id int PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, phone text, ssn text, city text);
CREATE TABLE public.orders (id serial PRIMARY KEY, customer_id int REFERENCES public.customers, item text, amount numeric(10,2), created_at timestamptz DEFAULT now());
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int PRIMARY KEY, customer_id int REFERENCES public.customers, card_number text, amount numeric(10,2), status text DEFAULT 'open');
CREATE SCHEMA ml;
CREATE TABLE ml.features (customer_id int PRIMARY KEY REFERENCES public.customers, churn_score real, tenure_months int, premium boolean);
INSERT INTO public.customers VALUES ${rows.join(',\n')};
INSERT INTO billing.invoices (id, customer_id, card_number, amount) VALUES ${cards.join(',\n')};
INSERT INTO public.orders (customer_id, item, amount) VALUES ${orders.join(',\n')};
INSERT INTO ml.features VALUES ${features.join(',\n')};
`;
}
