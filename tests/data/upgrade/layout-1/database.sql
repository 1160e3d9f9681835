--
-- PostgreSQL database dump
--

\restrict fGJQj6rRUSXPgNF9Frn2heqbqqid4HhspYSSSuGC5bUIB0ivYZvYflH7Majru0f

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: cdr_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdr_keys (
    record_key bytea NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: cdrs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
)
PARTITION BY RANGE (call_time);


--
-- Name: TABLE cdrs; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.cdrs IS 'One redacted CDR per call leg; partitioned by day of call_time (UTC).';


--
-- Name: COLUMN cdrs.call_time; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.call_time IS 'When the call began (setup, else connect, else disconnect): the partition key.';


--
-- Name: COLUMN cdrs.duration_ms; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.duration_ms IS 'Billable time, connect to disconnect; 0 when unanswered.';


--
-- Name: COLUMN cdrs.called_masked; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.called_masked IS 'Called number with its last digits hidden, as itemized bills show it.';


--
-- Name: COLUMN cdrs.called_hmac; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.called_hmac IS 'KEYID:HMAC-SHA256 pseudonym of the called number (E.164).';


--
-- Name: COLUMN cdrs.calling_hmac; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.calling_hmac IS 'KEYID:HMAC-SHA256 pseudonym of the calling number (E.164).';


--
-- Name: COLUMN cdrs.times_derived; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.times_derived IS 'True when a time was derived by the collector rather than sent by the switch.';


--
-- Name: COLUMN cdrs.clock_unsynced; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.clock_unsynced IS 'True when the switch flagged its clock as unsynchronized.';


--
-- Name: COLUMN cdrs.incomplete; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.cdrs.incomplete IS 'True when the end of the call was not seen (lost stop, switch restart, dialog timeout).';


--
-- Name: cdrs_default; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_default (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: cdrs_p20261130; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_p20261130 (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: cdrs_p20261205; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_p20261205 (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: cdrs_p20261206; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_p20261206 (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: cdrs_p20261207; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_p20261207 (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: cdrs_p20261208; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cdrs_p20261208 (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    call_time timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    disconnect_time timestamp with time zone,
    duration_ms bigint NOT NULL,
    answered boolean NOT NULL,
    disconnect_cause smallint,
    sip_code smallint,
    pdd_ms integer,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    incomplete boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL,
    stored_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cdrs_duration_ms_check CHECK ((duration_ms >= 0)),
    CONSTRAINT cdrs_protocol_check CHECK ((protocol = ANY (ARRAY['radius'::text, 'sip'::text, 'json'::text])))
);


--
-- Name: erasures; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.erasures (
    hmac text NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: open_calls; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.open_calls (
    record_key bytea NOT NULL,
    source text NOT NULL,
    protocol text NOT NULL,
    account text,
    leg text DEFAULT ''::text NOT NULL,
    opened_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    setup_time timestamp with time zone,
    connect_time timestamp with time zone,
    called_prefix text,
    called_country text,
    called_destination text,
    called_masked text,
    called_hmac text,
    calling_country text,
    calling_hmac text,
    correlation text,
    times_derived boolean DEFAULT false NOT NULL,
    clock_unsynced boolean DEFAULT false NOT NULL,
    received_at timestamp with time zone NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: cdrs_default; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_default DEFAULT;


--
-- Name: cdrs_p20261130; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_p20261130 FOR VALUES FROM ('2026-11-30 00:00:00+00') TO ('2026-12-01 00:00:00+00');


--
-- Name: cdrs_p20261205; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_p20261205 FOR VALUES FROM ('2026-12-05 00:00:00+00') TO ('2026-12-06 00:00:00+00');


--
-- Name: cdrs_p20261206; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_p20261206 FOR VALUES FROM ('2026-12-06 00:00:00+00') TO ('2026-12-07 00:00:00+00');


--
-- Name: cdrs_p20261207; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_p20261207 FOR VALUES FROM ('2026-12-07 00:00:00+00') TO ('2026-12-08 00:00:00+00');


--
-- Name: cdrs_p20261208; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdrs ATTACH PARTITION public.cdrs_p20261208 FOR VALUES FROM ('2026-12-08 00:00:00+00') TO ('2026-12-09 00:00:00+00');


--
-- Data for Name: cdr_keys; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdr_keys (record_key, first_seen) FROM stdin;
\\x0660257b82c6727ec8ce42f5259c9567	2026-12-06 22:54:55.784562+00
\\x290ed10e6ebf1b41c39b1d0b6301caea	2026-12-06 22:54:55.784562+00
\\x34d261efe9148ebcaab1b99026b81db4	2026-12-06 22:54:55.784562+00
\\x3d3741a9b5eee02025e2ca148ef493fc	2026-12-06 22:54:55.784562+00
\\x48d80046e5916f50711dd0c279755b1d	2026-12-06 22:54:55.784562+00
\\x4bdc68e6d7c1d23baf27090e8b8b746b	2026-12-06 22:54:55.784562+00
\\x540ae90961617852baa15a7f63019668	2026-12-06 22:54:55.784562+00
\\xaf76c44db32df156a79a59092c719a3a	2026-12-06 22:54:55.784562+00
\\xcf0602b5f7d37c32fb9d3e6232b5bd1f	2026-12-06 22:54:55.784562+00
\\xd5a3cc1617212d48cb8924d831328a67	2026-12-06 22:54:55.784562+00
\\xe3de43b9e9da9180749f1f6520dbba94	2026-12-06 22:54:55.784562+00
\\xe879313b639cfaad106d2067c0bbd855	2026-12-06 22:54:55.784562+00
\\xeda7a4d5a8a603e523eca179133cf5c0	2026-12-06 22:54:55.784562+00
\\xef7c03512a3e6f5e4c857007fac7cff3	2026-12-06 22:54:55.784562+00
\\xf055f07463c2ea2db1c82d9054579eb2	2026-12-06 22:54:55.784562+00
\\x27e206d34358866fb18be1f904acd8ea	2026-12-06 22:54:55.850138+00
\\x36696bcc5bdd43904225466347e30b75	2026-12-06 22:54:55.850138+00
\\x404ed7eaa730fc6c34ffb2d4b50a928b	2026-12-06 22:54:55.850138+00
\\x535d807bcdaa8fe692f992dc7169ce55	2026-12-06 22:54:55.850138+00
\\x6e5dc79f9e0d2586a1ebaacd058dbac7	2026-12-06 22:54:55.850138+00
\\x70072aeb701ebec062e43bb057ed2a5b	2026-12-06 22:54:55.850138+00
\\x70ff5c5c6f6b972dec7753113cfa4b37	2026-12-06 22:54:55.850138+00
\\x8a14cc197911aaf72b09315389f29969	2026-12-06 22:54:55.850138+00
\\xa461be43234ae0d24561cb9c81639904	2026-12-06 22:54:55.850138+00
\\xabd4948d16cd0c59f0e7182d25323731	2026-12-06 22:54:55.850138+00
\\xb759e55bfb7e71f6c16fbfaf5c0dc1ad	2026-12-06 22:54:55.850138+00
\\xbb5f864a880e9d47b4011c33384f26aa	2026-12-06 22:54:55.850138+00
\\xc637474d36288d0493089a2159c96d48	2026-12-06 22:54:55.850138+00
\\xd836d9e612c5eb1172a1552815a7d807	2026-12-06 22:54:55.850138+00
\\xe9133a5ec181ea0fab7655f2f9bc0164	2026-12-06 22:54:55.850138+00
\\x2f630b98a3a0ec5039447964a63d53b7	2026-12-06 22:54:55.855577+00
\\x3bbb7c0386ab2e47c780bc31f492c828	2026-12-06 22:54:55.855577+00
\\x4eed4bcb15e6c7f9556d7c6a1f21fbe9	2026-12-06 22:54:55.855577+00
\\x55659dea84e43f5855725518511846c8	2026-12-06 22:54:55.855577+00
\\x62548e5231a3d87a0847bc03a30f22dc	2026-12-06 22:54:55.855577+00
\\x65f928123ac2edc695f020820a4c833d	2026-12-06 22:54:55.855577+00
\\x8ee53724b302fc8125de27ac050852ac	2026-12-06 22:54:55.855577+00
\\x8fae497cde6e7309c51646f1a0e8f77c	2026-12-06 22:54:55.855577+00
\\x947f000f361aeb1c0e1cec45e0cac06f	2026-12-06 22:54:55.855577+00
\\x95943cddc62dcf6993cb7a97d423f412	2026-12-06 22:54:55.855577+00
\\x9a07054ee0173921be3b4138cf588b60	2026-12-06 22:54:55.855577+00
\\xa3fbf971dae5746712f3ee01452847de	2026-12-06 22:54:55.855577+00
\\xa8b0e767717c125dca1090b48b5a140e	2026-12-06 22:54:55.855577+00
\\xaffcc7684de2134637b2bacb38b09351	2026-12-06 22:54:55.855577+00
\\xb46bdbdc003cf18ff7224b013f436aed	2026-12-06 22:54:55.855577+00
\\xbf5928c699c4cac824bbc57a586269b8	2026-12-06 22:54:55.855577+00
\\xc3ddd2740c99e33bc0afd559be1ca0c4	2026-12-06 22:54:55.855577+00
\\xcabc885728769200fe7c0be85e722df8	2026-12-06 22:54:55.855577+00
\\xd9053028b4a9a5c75f5e3c942623c73d	2026-12-06 22:54:55.855577+00
\\x00b4ace1937fe564645891974bd7997d	2026-12-06 22:54:55.860045+00
\.


--
-- Data for Name: cdrs_default; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_default (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\.


--
-- Data for Name: cdrs_p20261130; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_p20261130 (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\\xbf5928c699c4cac824bbc57a586269b8	fs-test	json	trunk-a	inbound	2026-11-30 12:00:00.385581+00	2026-11-30 12:00:00.385581+00	2026-11-30 12:00:02.285587+00	2026-11-30 12:01:05.205563+00	62920	t	16	200	120	+4420	GB	\N	+442079460***	t1:b4b6dd5e327b37881319163e1fdf9258	DE	t1:c9ce471af49556c8e87cfae774b97181	02aaa64ace7da19f2660a786884500c4	f	f	f	2026-12-06 22:54:54.347759+00	2026-12-06 22:54:55.855577+00
\\x00b4ace1937fe564645891974bd7997d	fs-test	json	\N	outbound	2026-11-30 12:05:10.112233+00	2026-11-30 12:05:10.112233+00	\N	2026-11-30 12:05:11.004455+00	0	f	17	486	\N	+4420	GB	\N	+442079460***	t1:2d5da3a7041a0809e143365de74b3de9	FR	t1:0e09164deaa1c6be72d35c4ba862b0ab	acc9d52998d6d24a09f0ddf695270458	f	f	f	2026-12-06 22:54:54.352419+00	2026-12-06 22:54:55.860045+00
\.


--
-- Data for Name: cdrs_p20261205; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_p20261205 (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\.


--
-- Data for Name: cdrs_p20261206; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_p20261206 (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\\x0660257b82c6727ec8ce42f5259c9567	sbc-test	radius	\N		2026-12-06 22:45:02+00	\N	2026-12-06 22:45:02+00	2026-12-06 22:48:22+00	200000	t	\N	\N	\N	+39333	IT	\N	+39333008***	t1:4ece543ef725703c863edfc3a511ba1b	FR	t1:3b618c160a0071920ed9ee5cca65e0b1	\N	f	f	f	2026-12-06 22:54:53.956618+00	2026-12-06 22:54:55.784562+00
\\x290ed10e6ebf1b41c39b1d0b6301caea	sbc-test	radius	\N		2026-12-06 22:50:11+00	\N	2026-12-06 22:50:11+00	2026-12-06 22:51:48+00	97000	t	\N	\N	\N	+39333	IT	\N	+39333077***	t1:7f7c6d2574ded4b62f9ad756c8fb41e5	ES	t1:e7ec8305e2dc8a2de9673e5655341134	\N	f	f	f	2026-12-06 22:54:54.018867+00	2026-12-06 22:54:55.784562+00
\\x34d261efe9148ebcaab1b99026b81db4	sbc-test	radius	\N		2026-12-06 22:40:08+00	\N	2026-12-06 22:40:08+00	2026-12-06 22:43:34+00	206000	t	\N	\N	\N	+1	US	\N	+1415762***	t1:99422f4b4f5892e8a9e4bf897256974b	US	t1:6f3b76f9bde9d7dcf0d1d3d543107f8e	\N	f	f	f	2026-12-06 22:54:53.89002+00	2026-12-06 22:54:55.784562+00
\\x4bdc68e6d7c1d23baf27090e8b8b746b	sbc-test	radius	\N		2026-12-06 22:49:59+00	\N	2026-12-06 22:49:59+00	2026-12-06 22:55:45+00	346000	t	\N	\N	\N	+1	US	\N	+1212888***	t1:52cdf9fdacc8447aa76ba3bbe28f50ee	NL	t1:2a14f30636ba797ae964b77e9430a07a	\N	f	f	f	2026-12-06 22:54:53.92423+00	2026-12-06 22:54:55.784562+00
\\xaf76c44db32df156a79a59092c719a3a	sbc-test	radius	\N		2026-12-06 22:40:54+00	\N	2026-12-06 22:40:54+00	2026-12-06 22:42:24+00	90000	t	\N	\N	\N	+34935	ES	\N	+34935353***	t1:67aec1d0f028ab7b6699a7613c2e4aff	ES	t1:6407e908cb5c7663e4fdb4917c5af05a	\N	f	f	f	2026-12-06 22:54:53.986823+00	2026-12-06 22:54:55.784562+00
\\xcf0602b5f7d37c32fb9d3e6232b5bd1f	sbc-test	radius	\N	originate	2026-12-06 22:47:54.205+00	2026-12-06 22:47:54.205+00	2026-12-06 22:47:57.055+00	2026-12-06 22:56:40.91+00	523855	t	16	\N	\N	+3120	NL	\N	+31204551***	t1:84e914d0e2cc514fd0e748c733d1b257	ES	t1:1ff214e01910df1d5358e7fbb8bb693b	9d6955cb57b238886eefcf35c1c9e7a2	f	t	f	2026-12-06 22:54:53.936523+00	2026-12-06 22:54:55.784562+00
\\x48d80046e5916f50711dd0c279755b1d	sbc-test	radius	\N	originate	2026-12-06 22:45:55.782+00	2026-12-06 22:45:55.782+00	2026-12-06 22:46:03.488+00	2026-12-06 22:50:48.856+00	285368	t	16	\N	\N	+49	DE	\N	+491517526***	t1:8b57512cb607e0ad48f9dc0b5f96dbf3	IT	t1:d6a4e89b5f87454d1ac3ba8d52175f95	a95f747e6e30def494d8783eca2f8052	f	t	f	2026-12-06 22:54:53.866309+00	2026-12-06 22:54:55.784562+00
\\xeda7a4d5a8a603e523eca179133cf5c0	sbc-test	radius	trunk-a		2026-12-06 22:52:20.127273+00	2026-12-06 22:52:20.127273+00	\N	2026-12-06 22:52:25.371273+00	0	f	18	\N	\N	+44	GB	\N	+44770088***	t1:f3a447278a030a2cd5b094e1eb57f028	IT	t1:60af8e77c093ffd3b7ff08f0c3921aa9	\N	f	f	f	2026-12-06 22:54:53.875866+00	2026-12-06 22:54:55.784562+00
\\xd5a3cc1617212d48cb8924d831328a67	sbc-test	radius	trunk-a		2026-12-06 22:41:19.72994+00	2026-12-06 22:41:19.72994+00	2026-12-06 22:41:25.50794+00	2026-12-06 22:49:47.14694+00	501639	t	16	\N	\N	+316	NL	\N	+31646763***	t1:f3a93d56200fcec1cfb02498fd3fcb64	IT	t1:51a09df2a534e3ff209d2601fe4d9c32	\N	f	f	f	2026-12-06 22:54:54.006478+00	2026-12-06 22:54:55.784562+00
\\xe879313b639cfaad106d2067c0bbd855	sbc-test	radius	trunk-a		2026-12-06 22:44:18.073036+00	2026-12-06 22:44:18.073036+00	\N	2026-12-06 22:44:29.070036+00	0	f	17	\N	\N	+4989	DE	\N	+498921014***	t1:8399ac84f437a19577d088ef53007d50	NL	t1:7e5dd7c87d2bd4094804e734e53aeca4	\N	f	f	f	2026-12-06 22:54:53.942987+00	2026-12-06 22:54:55.784562+00
\\xf055f07463c2ea2db1c82d9054579eb2	sbc-test	radius	trunk-a		2026-12-06 22:53:28.379655+00	2026-12-06 22:53:28.379655+00	\N	2026-12-06 22:53:41.839655+00	0	f	1	\N	\N	+33	FR	\N	+331879416***	t1:c315afcc2ec5919646b60abcce06087c	FR	t1:c625f1f877976d7e6c5bf00e4015e678	\N	f	f	f	2026-12-06 22:54:53.974878+00	2026-12-06 22:54:55.784562+00
\\x540ae90961617852baa15a7f63019668	sbc-test	radius	\N	originate	2026-12-06 22:51:43.073+00	2026-12-06 22:51:43.073+00	\N	2026-12-06 22:51:58.215+00	0	f	17	\N	\N	+1	US	\N	+1212874***	t1:baf62a96923c1d9e85b5ef47223d269a	US	t1:4fa882f717f62dd17f31958a77090c72	52c2d2a011fed9297dbe880afd780218	f	t	f	2026-12-06 22:54:53.998773+00	2026-12-06 22:54:55.784562+00
\\xe3de43b9e9da9180749f1f6520dbba94	sbc-test	radius	trunk-a		2026-12-06 22:43:46.868251+00	2026-12-06 22:43:46.868251+00	2026-12-06 22:43:48.869251+00	2026-12-06 22:53:46.777251+00	597908	t	16	\N	\N	+34939	ES	\N	+34939876***	t1:0c7f6125b937fdb7aba18cbfb2eea669	GB	t1:26d1eae35727e1e580dcee7e655224be	\N	f	f	f	2026-12-06 22:54:53.910628+00	2026-12-06 22:54:55.784562+00
\\xef7c03512a3e6f5e4c857007fac7cff3	sbc-test	radius	\N	originate	2026-12-06 22:49:45.85+00	2026-12-06 22:49:45.85+00	2026-12-06 22:49:48.859+00	2026-12-06 22:58:27.386+00	518527	t	16	\N	\N	+1	US	\N	+1646686***	t1:d2ebdd73e4b0932b5afc2e760da15283	GB	t1:aef9788821504750450a88ce5c1b87b8	dc556dd44c62ca3fb31e6cfe0fbe40be	f	f	f	2026-12-06 22:54:53.903869+00	2026-12-06 22:54:55.784562+00
\\x3d3741a9b5eee02025e2ca148ef493fc	sbc-test	radius	\N	originate	2026-12-06 22:45:19.466+00	2026-12-06 22:45:19.466+00	2026-12-06 22:45:23.003+00	2026-12-06 22:53:51.596+00	508593	t	16	\N	\N	+33	FR	\N	+336400579***	t1:f356ae48b6487a46d69c1b64a26e592b	IT	t1:9518ed3b9b3e79c209e845247b9f74e5	9c15deb866000eb848d2ee8e35d9311c	f	f	f	2026-12-06 22:54:53.968675+00	2026-12-06 22:54:55.784562+00
\\x27e206d34358866fb18be1f904acd8ea	sbc-test	radius	\N		2026-12-06 22:43:51+00	\N	2026-12-06 22:43:51+00	2026-12-06 22:49:08+00	317000	t	\N	\N	\N	+3120	NL	\N	+31202668***	t1:e5ba7371a087126a89600c728aefd4ad	NL	t1:dd4991c386a00a0b47829ed91f9bb8f6	\N	f	f	f	2026-12-06 22:54:54.082207+00	2026-12-06 22:54:55.850138+00
\\x70072aeb701ebec062e43bb057ed2a5b	sbc-test	radius	\N		2026-12-06 22:48:05+00	\N	2026-12-06 22:48:05+00	2026-12-06 22:54:04+00	359000	t	\N	\N	\N	+1	US	\N	+1415579***	t1:65c37b54d921996d93d2a14f6ffdd2b5	NL	t1:a35406c2b88f0f9426213a0be47b01e3	\N	f	f	f	2026-12-06 22:54:54.144874+00	2026-12-06 22:54:55.850138+00
\\x8a14cc197911aaf72b09315389f29969	sbc-test	radius	\N		2026-12-06 22:42:15+00	\N	2026-12-06 22:42:15+00	2026-12-06 22:52:00+00	585000	t	\N	\N	\N	+4989	DE	\N	+498957213***	t1:c026e07be97f4076c87a880c2f43c0ca	GB	t1:022ecfd31bfd022263fddb2f4bd65d06	\N	f	f	f	2026-12-06 22:54:54.114462+00	2026-12-06 22:54:55.850138+00
\\xa461be43234ae0d24561cb9c81639904	sbc-test	radius	\N		2026-12-06 22:45:34+00	\N	\N	2026-12-06 22:45:46+00	0	f	\N	\N	\N	+39333	IT	\N	+39333145***	t1:e861d5dd0cf084f3d73256f800a30e73	US	t1:f90d4eb361a4fce012e324b721c618e3	\N	f	f	f	2026-12-06 22:54:54.174994+00	2026-12-06 22:54:55.850138+00
\\xd836d9e612c5eb1172a1552815a7d807	sbc-test	radius	\N		2026-12-06 22:44:45+00	\N	\N	2026-12-06 22:45:05+00	0	f	\N	\N	\N	+44	GB	\N	+44770002***	t1:3e37f39d5a736672288fed9a4dcfffb3	US	t1:272398a66f2234b8dfe36842a6b88e92	\N	f	f	f	2026-12-06 22:54:54.051882+00	2026-12-06 22:54:55.850138+00
\\x6e5dc79f9e0d2586a1ebaacd058dbac7	sbc-test	radius	\N	originate	2026-12-06 22:54:44.827529+00	2026-12-06 22:54:44.827529+00	\N	2026-12-06 22:54:54.126529+00	0	f	17	\N	\N	+33	FR	\N	+336704881***	t1:deca70d0130a5abb8a92891faa7192c3	NL	t1:506c89e187e322127bdd3731c6669d67	27da0c676ee5ff01806c477a9a7c3969	t	t	f	2026-12-06 22:54:54.126529+00	2026-12-06 22:54:55.850138+00
\\xc637474d36288d0493089a2159c96d48	sbc-test	radius	trunk-a		2026-12-06 22:52:28.480865+00	2026-12-06 22:52:28.480865+00	2026-12-06 22:52:36.393865+00	2026-12-06 22:58:44.127865+00	367734	t	16	\N	\N	+1	US	\N	+1212404***	t1:111be4e34b52b4dd47f8552bd0af6ca3	GB	t1:727166616e66f2e625c77560d8165b9e	\N	f	f	f	2026-12-06 22:54:54.162826+00	2026-12-06 22:54:55.850138+00
\\x70ff5c5c6f6b972dec7753113cfa4b37	sbc-test	radius	\N	originate	2026-12-06 22:52:40.522+00	2026-12-06 22:52:40.522+00	2026-12-06 22:52:46.795+00	2026-12-06 22:53:28.562+00	41767	t	16	\N	\N	+44	GB	\N	+44161515***	t1:0fc8b58f3452233f99934c5e64e3cb2b	IT	t1:4cccca27a89e325f0c6b758a3ad0398b	6f5b7848fc0d4de7e615e81813657b01	f	t	f	2026-12-06 22:54:54.063886+00	2026-12-06 22:54:55.850138+00
\\x535d807bcdaa8fe692f992dc7169ce55	sbc-test	radius	trunk-a		2026-12-06 22:54:34.226462+00	2026-12-06 22:54:34.226462+00	2026-12-06 22:54:41.361462+00	2026-12-06 22:59:16.782462+00	275421	t	16	\N	\N	+316	NL	\N	+31680261***	t1:10699b2be750b6f0ece9b349fb374199	NL	t1:3a2e3c93b8beaac1123c78578bbb3b45	\N	f	f	f	2026-12-06 22:54:54.132657+00	2026-12-06 22:54:55.850138+00
\\x404ed7eaa730fc6c34ffb2d4b50a928b	sbc-test	radius	trunk-a		2026-12-06 22:40:07.379778+00	2026-12-06 22:40:07.379778+00	2026-12-06 22:40:09.392778+00	2026-12-06 22:41:57.628778+00	108236	t	16	\N	\N	+34600	ES	\N	+34600159***	t1:ceda4d1899b93bf97a53e2c55c939db2	US	t1:053ff714944181a25d5d8d5e75484e00	\N	f	f	f	2026-12-06 22:54:54.102176+00	2026-12-06 22:54:55.850138+00
\\xb759e55bfb7e71f6c16fbfaf5c0dc1ad	sbc-test	radius	\N	originate	2026-12-06 22:49:11.926+00	2026-12-06 22:49:11.926+00	2026-12-06 22:49:17.239+00	2026-12-06 22:55:18.65+00	361411	t	16	\N	\N	+44	GB	\N	+44201926***	t1:ae654d1e96134908c74c1ee99a2b885c	NL	t1:b3a79a2c39c413da7a7645553385ecb2	26e95332a5e1fbbeb531c7c6435119c8	f	f	f	2026-12-06 22:54:54.032992+00	2026-12-06 22:54:55.850138+00
\\xe9133a5ec181ea0fab7655f2f9bc0164	sbc-test	radius	trunk-a		2026-12-06 22:50:46.687721+00	2026-12-06 22:50:46.687721+00	\N	2026-12-06 22:51:15.070721+00	0	f	19	\N	\N	+33	FR	\N	+336462705***	t1:3a7a05e3e13568766a9caf6f46df107e	NL	t1:97298071e0d4099ccd738f7fbefc53b5	\N	f	f	f	2026-12-06 22:54:54.039746+00	2026-12-06 22:54:55.850138+00
\\xbb5f864a880e9d47b4011c33384f26aa	sbc-test	radius	trunk-a		2026-12-06 22:50:09.534507+00	2026-12-06 22:50:09.534507+00	\N	2026-12-06 22:50:29.804507+00	0	f	18	\N	\N	+44	GB	\N	+44161845***	t1:4683d81d77d4a3cce75eed6409455cd4	DE	t1:3ea126f340b8a3ab50458bf335706a2e	\N	f	f	f	2026-12-06 22:54:54.070107+00	2026-12-06 22:54:55.850138+00
\\xabd4948d16cd0c59f0e7182d25323731	sbc-test	radius	\N	originate	2026-12-06 22:46:19.41+00	2026-12-06 22:46:19.41+00	\N	2026-12-06 22:46:28.213+00	0	f	18	\N	\N	+34934	ES	\N	+34934101***	t1:50be498a5342cc8a264c8e8a8278f5e6	FR	t1:6cb844f8d5d351f2fccb2c8893c00925	9ffdcd97b623a2e6203a9413117b3090	f	f	f	2026-12-06 22:54:54.156741+00	2026-12-06 22:54:55.850138+00
\\x36696bcc5bdd43904225466347e30b75	sbc-test	radius	\N	originate	2026-12-06 22:47:32.526+00	2026-12-06 22:47:32.526+00	2026-12-06 22:47:39.376+00	2026-12-06 22:49:00.398+00	81022	t	16	\N	\N	+3906	IT	\N	+39061509***	t1:3110525cf6270640b9bf40614125cd51	DE	t1:53f1364b9eaa1d2f22a4eb597c7fd6a7	4b96b69853e8d5f7576d5d08b3c82e86	f	f	f	2026-12-06 22:54:54.094903+00	2026-12-06 22:54:55.850138+00
\\x2f630b98a3a0ec5039447964a63d53b7	sbc-test	radius	\N		2026-12-06 22:54:32+00	\N	\N	2026-12-06 22:54:43+00	0	f	\N	\N	\N	+39333	IT	\N	+39333646***	t1:c06af3a8e6f2ffa5f6f6d72471b3b19f	NL	t1:3e0c6042be67e0cd1938d233a3f1f874	\N	f	f	f	2026-12-06 22:54:54.29964+00	2026-12-06 22:54:55.855577+00
\\x8fae497cde6e7309c51646f1a0e8f77c	sbc-test	radius	\N		2026-12-06 22:53:20+00	\N	2026-12-06 22:53:20+00	2026-12-06 22:54:46+00	86000	t	\N	\N	\N	+3906	IT	\N	+39062373***	t1:3b9f849892cc5a82c32486ab1a7a07a5	ES	t1:b0a695d84d59881f835bb98cc4b9b14b	\N	f	f	f	2026-12-06 22:54:54.330071+00	2026-12-06 22:54:55.855577+00
\\x9a07054ee0173921be3b4138cf588b60	proxy-a	sip	\N		2026-12-06 22:49:53+00	2026-12-06 22:49:53+00	2026-12-06 22:49:54.5+00	2026-12-06 22:49:57.5+00	3000	t	16	200	500	+4420	GB	\N	+442079460***	t1:75ea1d496a86aca586b41834bf06c874	DE	t1:894e1d7333b01631f58bc4e9db9d35cb	\N	f	f	f	2026-12-06 22:54:54.34528+00	2026-12-06 22:54:55.855577+00
\\xa3fbf971dae5746712f3ee01452847de	sbc-test	radius	\N		2026-12-06 22:40:33+00	\N	\N	2026-12-06 22:40:58+00	0	f	\N	\N	\N	+34913	ES	\N	+34913115***	t1:d8022766821672dcc307bb307f422158	US	t1:23ec81bfc975e9ac58a85bfd2df51a4d	\N	f	f	f	2026-12-06 22:54:54.207537+00	2026-12-06 22:54:55.855577+00
\\xb46bdbdc003cf18ff7224b013f436aed	sbc-test	radius	\N		2026-12-06 22:47:17+00	\N	\N	2026-12-06 22:47:28+00	0	f	\N	\N	\N	+33	FR	\N	+337185406***	t1:6143793da4c356b9b3472bcf6fefa6cf	FR	t1:167ca5661d9d6882facc1f661f4cd52e	\N	f	f	f	2026-12-06 22:54:54.269238+00	2026-12-06 22:54:55.855577+00
\\xd9053028b4a9a5c75f5e3c942623c73d	sbc-test	radius	\N		2026-12-06 22:50:16+00	\N	\N	2026-12-06 22:50:33+00	0	f	\N	\N	\N	+44	GB	\N	+44791189***	t1:571eb6f745d88cd93a2db72af8c4929e	FR	t1:a74e3ed433bee5d24b384bc9d5759b67	\N	f	f	f	2026-12-06 22:54:54.239808+00	2026-12-06 22:54:55.855577+00
\\x95943cddc62dcf6993cb7a97d423f412	sbc-test	radius	trunk-a		2026-12-06 22:53:18.718242+00	2026-12-06 22:53:18.718242+00	\N	2026-12-06 22:53:34.148242+00	0	f	17	\N	\N	+34600	ES	\N	+34600680***	t1:e89996f887cca17a89be90e5734cd904	DE	t1:524121467ef8c5df113ceb14ffd405da	\N	f	f	f	2026-12-06 22:54:54.2874+00	2026-12-06 22:54:55.855577+00
\\xc3ddd2740c99e33bc0afd559be1ca0c4	sbc-test	radius	\N	originate	2026-12-06 22:47:29.13+00	2026-12-06 22:47:29.13+00	2026-12-06 22:47:36.778+00	2026-12-06 22:52:07.44+00	270662	t	16	\N	\N	+34600	ES	\N	+34600140***	t1:6b096023fe05c7fafe4a19465a60a5f2	FR	t1:3690859b883d4cb0ac8379d01817770d	6e029f1d4d29a715869d17db1d795d4c	f	f	f	2026-12-06 22:54:54.219819+00	2026-12-06 22:54:55.855577+00
\\xcabc885728769200fe7c0be85e722df8	sbc-test	radius	trunk-a		2026-12-06 22:53:17.325046+00	2026-12-06 22:53:17.325046+00	2026-12-06 22:53:21.861046+00	2026-12-06 23:02:24.107046+00	542246	t	16	\N	\N	+44	GB	\N	+44770086***	t1:fbaae51c38aad3378de2aaac2c2fc578	NL	t1:10655b36c9d35ce8e69dda59e3cc7d51	\N	f	f	f	2026-12-06 22:54:54.317681+00	2026-12-06 22:54:55.855577+00
\\x55659dea84e43f5855725518511846c8	sbc-test	radius	trunk-a		2026-12-06 22:52:55.922443+00	2026-12-06 22:52:55.922443+00	\N	2026-12-06 22:53:10.700443+00	0	f	17	\N	\N	+316	NL	\N	+31605744***	t1:9874257a63e2f284d79d173fc4226a20	FR	t1:ca53b2d46bc252cec0459896bada19f3	\N	f	f	f	2026-12-06 22:54:54.227625+00	2026-12-06 22:54:55.855577+00
\\x8ee53724b302fc8125de27ac050852ac	sbc-test	radius	\N	originate	2026-12-06 22:47:50.991+00	2026-12-06 22:47:50.991+00	2026-12-06 22:47:53.653+00	2026-12-06 22:57:29.747+00	576094	t	16	\N	\N	+39333	IT	\N	+39333029***	t1:c6c9c5270a3f1d8a355ff0bda07cbd45	NL	t1:a0141b695a9551ab29c9b0cba09773f7	ad60836bc4f678e44cedeae97c589963	f	f	f	2026-12-06 22:54:54.281169+00	2026-12-06 22:54:55.855577+00
\\x65f928123ac2edc695f020820a4c833d	proxy-a	sip	\N		2026-12-06 22:50:23+00	2026-12-06 22:50:23+00	\N	2026-12-06 22:50:23.2+00	0	f	17	486	\N	+4420	GB	\N	+442079460***	t1:4b55d5c1c252c7938574764326817a57	DE	t1:894e1d7333b01631f58bc4e9db9d35cb	\N	f	f	f	2026-12-06 22:54:54.346762+00	2026-12-06 22:54:55.855577+00
\\x3bbb7c0386ab2e47c780bc31f492c828	sbc-test	radius	\N	originate	2026-12-06 22:54:40.18695+00	2026-12-06 22:54:40.18695+00	\N	2026-12-06 22:54:54.25195+00	0	f	19	\N	\N	+34600	ES	\N	+34600727***	t1:d03b718c7fd5f26f1c183cac287e7d33	US	t1:520f0ced5f7832c16626d13a7b341cb0	7bf7f6da7bd35dcceaf3e4122ca86cfd	t	t	f	2026-12-06 22:54:54.25195+00	2026-12-06 22:54:55.855577+00
\\x4eed4bcb15e6c7f9556d7c6a1f21fbe9	sbc-test	radius	trunk-a		2026-12-06 22:39:54.347623+00	2026-12-06 22:39:54.347623+00	\N	2026-12-06 22:39:59.040623+00	0	f	1	\N	\N	+33	FR	\N	+331533580***	t1:bc8b77964228390cf5bc5d8fbcd34119	NL	t1:6e1a3dc54606d9fc2e1eb65e016bbb9d	\N	f	f	f	2026-12-06 22:54:54.194137+00	2026-12-06 22:54:55.855577+00
\\x62548e5231a3d87a0847bc03a30f22dc	sbc-test	radius	trunk-a		2026-12-06 22:49:39.503729+00	2026-12-06 22:49:39.503729+00	\N	2026-12-06 22:50:08.791729+00	0	f	17	\N	\N	+34930	ES	\N	+34930501***	t1:1502338b2ae2f4dc6df8937c4e09311d	GB	t1:fcc0f904788e91b0d5c771935fdf21fc	\N	f	f	f	2026-12-06 22:54:54.258131+00	2026-12-06 22:54:55.855577+00
\\xaffcc7684de2134637b2bacb38b09351	proxy-a	sip	\N		2026-12-06 22:50:53+00	2026-12-06 22:50:53+00	\N	2026-12-06 22:50:57.4+00	0	f	16	487	400	+4420	GB	\N	+442079460***	t1:90814aafc4416d5b922d602bfe3a9a70	DE	t1:894e1d7333b01631f58bc4e9db9d35cb	\N	f	f	f	2026-12-06 22:54:54.347023+00	2026-12-06 22:54:55.855577+00
\\x947f000f361aeb1c0e1cec45e0cac06f	sbc-test	radius	\N	originate	2026-12-06 22:53:47.021+00	2026-12-06 22:53:47.021+00	\N	2026-12-06 22:54:06.271+00	0	f	31	\N	\N	+1	US	\N	+1646279***	t1:eb669322d7a917c3fc93f7034e460a25	FR	t1:23220d41e273525b5f86b647dcd0c3e3	d641c0ab4772eeee2daef5d6fdfae160	f	t	f	2026-12-06 22:54:54.311499+00	2026-12-06 22:54:55.855577+00
\\xa8b0e767717c125dca1090b48b5a140e	sbc-test	radius	\N	originate	2026-12-06 22:49:43.745417+00	2026-12-06 22:49:43.745417+00	2026-12-06 22:49:46.302417+00	2026-12-06 22:54:54.187417+00	307885	t	16	\N	\N	+33	FR	\N	+337090720***	t1:946804b703b2fdf1b0fae938687e5c3e	GB	t1:a834c943b350be9a33b091e807df8bd3	a6d937e7d8475be5bdfea14e354be758	t	t	f	2026-12-06 22:54:54.187417+00	2026-12-06 22:54:55.855577+00
\.


--
-- Data for Name: cdrs_p20261207; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_p20261207 (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\.


--
-- Data for Name: cdrs_p20261208; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.cdrs_p20261208 (record_key, source, protocol, account, leg, call_time, setup_time, connect_time, disconnect_time, duration_ms, answered, disconnect_cause, sip_code, pdd_ms, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, incomplete, received_at, stored_at) FROM stdin;
\.


--
-- Data for Name: erasures; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.erasures (hmac, requested_at) FROM stdin;
\.


--
-- Data for Name: open_calls; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.open_calls (record_key, source, protocol, account, leg, opened_at, updated_at, setup_time, connect_time, called_prefix, called_country, called_destination, called_masked, called_hmac, calling_country, calling_hmac, correlation, times_derived, clock_unsynced, received_at) FROM stdin;
\\x06b84de52fbe344a0f9b9e9ab729c973	sbc-test	radius	\N		2026-12-06 22:42:58+00	2026-12-06 22:42:58+00	\N	2026-12-06 22:42:58+00	+34910	ES	\N	+34910773***	t1:6df2b7101636f073f3dae03e09a1210d	US	t1:bec3746fd59b0a41b3a7a984d2dea01a	\N	f	f	2026-12-06 22:54:53.896443+00
\\x9082f1e6f61e0682f6ba8aeeac3de69f	sbc-test	radius	\N		2026-12-06 22:51:10+00	2026-12-06 22:51:10+00	\N	2026-12-06 22:51:10+00	+1	US	\N	+1646002***	t1:83f0a8d669aac9e0b6d7c41a2794cdc0	GB	t1:5d6c3329f037e96695e66b90392a8b44	\N	f	f	2026-12-06 22:54:54.024745+00
\\xd50fd7457fdc1636de1de45d13ff5dec	sbc-test	radius	\N		2026-12-06 22:40:48+00	2026-12-06 22:40:48+00	\N	2026-12-06 22:40:48+00	+33	FR	\N	+331942881***	t1:9b907a1d60ce0ce6adb43a934193c89d	IT	t1:fb4c0cbd9ffb081266bb8494117b9d7e	\N	f	f	2026-12-06 22:54:53.992707+00
\\xe15103a5410179eeee74396be36f134a	sbc-test	radius	\N		2026-12-06 22:45:54+00	2026-12-06 22:45:54+00	\N	2026-12-06 22:45:54+00	+33	FR	\N	+336399248***	t1:d33da7395459a41a910067a45efca0f7	GB	t1:9baf2f752da745bc56d8d79dea67881d	\N	f	f	2026-12-06 22:54:53.962505+00
\\xe6f1b402e1b8d3b4ab8f1f19069f2f8d	sbc-test	radius	\N		2026-12-06 22:49:24+00	2026-12-06 22:49:24+00	\N	2026-12-06 22:49:24+00	+44	GB	\N	+44209573***	t1:73e5d6a8fef71807ee28958821404c9c	FR	t1:668d39b24da25ffed6ff1e450b5c8d95	\N	f	f	2026-12-06 22:54:53.930207+00
\\x1a3bee4e272045d8ae89e3ea1b88b1fd	sbc-test	radius	\N		2026-12-06 22:45:51+00	2026-12-06 22:45:51+00	\N	2026-12-06 22:45:51+00	+1	US	\N	+1212918***	t1:dcb0d29068686aad4b5350c6a7ac9436	GB	t1:5f6315d3b8cf46a065994649691aabc4	\N	f	f	2026-12-06 22:54:54.088051+00
\\x531e1bf5e6749890c2e701f549aec836	sbc-test	radius	\N		2026-12-06 22:40:35+00	2026-12-06 22:40:35+00	\N	2026-12-06 22:40:35+00	+4940	DE	\N	+494042832***	t1:e2ca750f313b0bbe767cee02c093d5d4	NL	t1:f07f9c348616725b1490546168b98858	\N	f	f	2026-12-06 22:54:54.120351+00
\\x562f18d9c576e88a6c40695bcf1c0f4d	sbc-test	radius	\N		2026-12-06 22:43:54+00	2026-12-06 22:43:54+00	\N	2026-12-06 22:43:54+00	+3166	NL	\N	+31666069***	t1:6675f21da5a306981577e6f71ee46679	DE	t1:c44dbb7e1169a903e3b22eba07aae150	\N	f	f	2026-12-06 22:54:54.180907+00
\\xa512f49ec3f5e97c74f0ceb151bc41d3	sbc-test	radius	\N		2026-12-06 22:50:47+00	2026-12-06 22:50:47+00	\N	2026-12-06 22:50:47+00	+4989	DE	\N	+498984605***	t1:2688b82873ec622d4f09e419b91f83a0	GB	t1:eff2e7b1c88e9a2a1e3c66f2323c0d58	\N	f	f	2026-12-06 22:54:54.057795+00
\\xc8b144a26dd02f97277a338f3cabc4fa	sbc-test	radius	\N		2026-12-06 22:46:34+00	2026-12-06 22:46:34+00	\N	2026-12-06 22:46:34+00	+34600	ES	\N	+34600308***	t1:71e06652e38e591494f3b3553552ed94	FR	t1:9c2761c9fdc1aefb4d4ea8983cfdca3c	\N	f	f	2026-12-06 22:54:54.150688+00
\\x232cd0a22ea939032df370258f08202a	sbc-test	radius	\N		2026-12-06 22:53:04+00	2026-12-06 22:53:04+00	\N	2026-12-06 22:53:04+00	+44	GB	\N	+44791166***	t1:ae0cba81790b6167ae3082a1842281c1	US	t1:8c3d04a3c195da65b3e60c60fa6b9d84	\N	f	f	2026-12-06 22:54:54.245825+00
\\x562a91fc67712a8502eb9e9691f38f51	sbc-test	radius	\N		2026-12-06 22:42:31+00	2026-12-06 22:42:31+00	\N	2026-12-06 22:42:31+00	+3902	IT	\N	+39022762***	t1:fe91a324c96aab2a395a60a36c321e0f	US	t1:736e8843a8c9311c75b0db3a3a9c56a1	\N	f	f	2026-12-06 22:54:54.213526+00
\\x5ddbc797a9194f5468e4d2ba1faa360e	sbc-test	radius	\N		2026-12-06 22:44:08+00	2026-12-06 22:44:08+00	\N	2026-12-06 22:44:08+00	+33	FR	\N	+331406607***	t1:33df604dd75aa610783e2f99d820f29f	NL	t1:bea3a28161401156ef6c411d5bbc846c	\N	f	f	2026-12-06 22:54:54.305498+00
\\xe79d0b880ff1b8ae991274ba04b2fb5c	sbc-test	radius	\N		2026-12-06 22:49:43+00	2026-12-06 22:49:43+00	\N	2026-12-06 22:49:43+00	+1	US	\N	+1646982***	t1:b8d0911f8b7d900a15808f7949b774c9	DE	t1:4152e7f665e39e40f84682a8f67cff04	\N	f	f	2026-12-06 22:54:54.275048+00
\\xf6b4d94187f13bea8a0754a57b38204d	sbc-test	radius	\N		2026-12-06 22:49:29+00	2026-12-06 22:49:29+00	\N	2026-12-06 22:49:29+00	+316	NL	\N	+31618880***	t1:c758212ba787155fe9a8e4fc515b2efd	US	t1:860f80b0d0e3bffa67750cf87a7f0884	\N	f	f	2026-12-06 22:54:54.336593+00
\.


--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.schema_migrations (version, name, applied_at) FROM stdin;
1	001_initial.sql	2026-12-06 22:54:55.735626+00
2	002_erasures.sql	2026-12-06 22:54:55.735626+00
\.


--
-- Name: cdr_keys cdr_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cdr_keys
    ADD CONSTRAINT cdr_keys_pkey PRIMARY KEY (record_key);


--
-- Name: erasures erasures_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.erasures
    ADD CONSTRAINT erasures_pkey PRIMARY KEY (hmac);


--
-- Name: open_calls open_calls_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.open_calls
    ADD CONSTRAINT open_calls_pkey PRIMARY KEY (record_key);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: cdr_keys_first_seen; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX cdr_keys_first_seen ON public.cdr_keys USING btree (first_seen);


--
-- Name: open_calls_called_hmac; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX open_calls_called_hmac ON public.open_calls USING btree (called_hmac);


--
-- Name: open_calls_calling_hmac; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX open_calls_calling_hmac ON public.open_calls USING btree (calling_hmac);


--
-- Name: open_calls_source_opened; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX open_calls_source_opened ON public.open_calls USING btree (source, opened_at);


--
-- PostgreSQL database dump complete
--

\unrestrict fGJQj6rRUSXPgNF9Frn2heqbqqid4HhspYSSSuGC5bUIB0ivYZvYflH7Majru0f

