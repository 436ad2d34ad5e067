-- tt-rs quickstart demo data. Load after sql/schema.sql:
--   mariadb teamtalk < sql/demo.sql
--
-- Idempotent: every row has a fixed primary key and is written with
-- INSERT IGNORE, so loading the file again changes nothing (and does not
-- overwrite changes the servers made to these rows in the meantime).
-- All timestamps are the fixed value 1735689600 (2025-01-01 00:00:00 UTC);
-- they must be non-zero because department sync asks for `updated > 0`.
--
-- Demo users (login name / password):
--   alice / 123456   bob / 123456   carol / 123456   dave / 123456
--
-- Passwords are stored the way the TeamTalk admin console stores them:
--   password = lower_hex(md5(lower_hex(md5(plain)) + salt))
-- The client sends md5(plain) and db_proxy checks md5(that + salt) == password.
-- Values below were computed with Python hashlib, plain = "123456",
-- md5("123456") = e10adc3949ba59abbe56e057f20f883e, and per-user salts
-- 1234 (alice), 2345 (bob), 3456 (carol), 4567 (dave), e.g.:
--   hashlib.md5((hashlib.md5(b"123456").hexdigest() + "1234").encode()).hexdigest()
-- Check from SQL:
--   SELECT id FROM IMUser WHERE name = 'alice' AND status = 0
--     AND password = MD5(CONCAT(MD5('123456'), salt));

-- One department everybody belongs to.
INSERT IGNORE INTO `IMDepart`
  (`id`, `departName`, `priority`, `parentId`, `status`, `created`, `updated`)
VALUES
  (1, 'Engineering', 0, 0, 0, 1735689600, 1735689600);

-- Four users; sex: 1 male, 2 female. status 0 = may log in.
INSERT IGNORE INTO `IMUser`
  (`id`, `sex`, `name`, `domain`, `nick`, `password`, `salt`, `phone`, `email`,
   `avatar`, `departId`, `status`, `created`, `updated`, `push_shield_status`,
   `sign_info`)
VALUES
  (1, 2, 'alice', 'alice', 'Alice', 'b605e86d02eef8bfd0646f6a704c17c9', '1234',
   '13800000001', 'alice@example.com', '', 1, 0, 1735689600, 1735689600, 0,
   'Hi, I am Alice'),
  (2, 1, 'bob', 'bob', 'Bob', 'd5e20fbe9210d24fcfedb87d8be73ae6', '2345',
   '13800000002', 'bob@example.com', '', 1, 0, 1735689600, 1735689600, 0,
   'Hi, I am Bob'),
  (3, 2, 'carol', 'carol', 'Carol', '29b05ea7e21202a7dcfd6c4417cf7530', '3456',
   '13800000003', 'carol@example.com', '', 1, 0, 1735689600, 1735689600, 0,
   'Hi, I am Carol'),
  (4, 1, 'dave', 'dave', 'Dave', '2863e1f1ed72b8aa05a6195d80f7b45b', '4567',
   '13800000004', 'dave@example.com', '', 1, 0, 1735689600, 1735689600, 0,
   'Hi, I am Dave');

-- A normal (type 1) group created by alice with all four users in it.
-- status 0 = active (the column default 1 means deleted), version 1 is what
-- newly created groups get, userCnt matches the member rows below.
INSERT IGNORE INTO `IMGroup`
  (`id`, `name`, `avatar`, `creator`, `type`, `userCnt`, `status`, `version`,
   `lastChated`, `updated`, `created`)
VALUES
  (1, 'tt-rs demo', '', 1, 1, 4, 0, 1, 0, 1735689600, 1735689600);

-- Group membership; status 0 = member.
-- Note: the C++ db_proxy_server reads a group's member list from the redis
-- hash group_member_<groupId> (field = userId, value = join time), which it
-- fills when members are added through the servers. With the C++ servers the
-- equivalent redis seed is:
--   HSET group_member_1 1 1735689600 2 1735689600 3 1735689600 4 1735689600
INSERT IGNORE INTO `IMGroupMember`
  (`id`, `groupId`, `userId`, `status`, `created`, `updated`)
VALUES
  (1, 1, 1, 0, 1735689600, 1735689600),
  (2, 1, 2, 0, 1735689600, 1735689600),
  (3, 1, 3, 0, 1735689600, 1735689600),
  (4, 1, 4, 0, 1735689600, 1735689600);
