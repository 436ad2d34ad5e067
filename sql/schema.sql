-- tt-rs database schema.
--
-- Table-for-table compatible with the schema used by the original C++
-- TeamTalk servers (ttopen.sql): same tables, columns, types, defaults,
-- keys, engines and character sets, so a database written by either
-- implementation can be read by the other.
--
-- This file does not create or select a database; load it into the one
-- you want, e.g.:   mariadb teamtalk < sql/schema.sql
-- Every statement is CREATE TABLE IF NOT EXISTS, so loading it again is a
-- no-op. Demo data lives in sql/demo.sql.
--
-- Conventions: all `created` / `updated` / `lastChated` columns are Unix
-- timestamps in seconds (int unsigned). `status` 0 means active/normal.

-- IMAdmin: accounts of the web admin console (not read by the IM servers).
-- pwd is md5(plain) in hex; status 0 = active, 1 = deleted.
CREATE TABLE IF NOT EXISTS `IMAdmin` (
  `id` mediumint(6) unsigned NOT NULL AUTO_INCREMENT,
  `uname` varchar(40) NOT NULL COMMENT 'login name',
  `pwd` char(32) NOT NULL COMMENT 'password hash',
  `status` tinyint(2) unsigned NOT NULL DEFAULT '0' COMMENT '0 active, 1 deleted',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

-- IMAudio: voice messages; the message row stores the IMAudio id, the audio
-- bytes live on the file store at `path`. Used by db_proxy_server AudioModel.
CREATE TABLE IF NOT EXISTS `IMAudio` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user or group id',
  `path` varchar(255) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'storage location of the audio file',
  `size` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'file size in bytes',
  `duration` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'duration in seconds',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_fromId_toId` (`fromId`,`toId`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMDepart: organisation departments (tree via parentId).
-- Used by db_proxy_server DepartModel (department list / changed-since sync).
CREATE TABLE IF NOT EXISTS `IMDepart` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT COMMENT 'department id',
  `departName` varchar(64) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'department name',
  `priority` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'display priority',
  `parentId` int(11) unsigned NOT NULL COMMENT 'parent department id, 0 for root',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_departName` (`departName`),
  KEY `idx_priority_status` (`priority`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMDiscovery: entries of the clients' "discovery" page, maintained and served
-- by the web admin console (PHP side); not read by the IM servers.
CREATE TABLE IF NOT EXISTS `IMDiscovery` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT COMMENT 'id',
  `itemName` varchar(64) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'item name',
  `itemUrl` varchar(64) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'item URL',
  `itemPriority` int(11) unsigned NOT NULL COMMENT 'display priority',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'status',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_itemName` (`itemName`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMGroup: group chats. `version` is bumped on every membership change so
-- clients can re-fetch group info; `userCnt` counts members.
-- Used by db_proxy_server GroupModel (create, info list, version list, members).
CREATE TABLE IF NOT EXISTS `IMGroup` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(256) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'group name',
  `avatar` varchar(256) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'group avatar URL',
  `creator` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creator user id',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '1' COMMENT '1 normal (fixed), 2 temporary',
  `userCnt` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'number of members',
  `status` tinyint(3) unsigned NOT NULL DEFAULT '1' COMMENT 'deleted flag; rows written by the servers use 0',
  `version` int(11) unsigned NOT NULL DEFAULT '1' COMMENT 'group info version',
  `lastChated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'time of the last group message',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_name` (`name`(191)),
  KEY `idx_creator` (`creator`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM groups';

-- IMGroupMember: user <-> group membership; status 0 = member, 1 = left/removed.
-- Used by db_proxy_server GroupModel (member add/remove, a user's group list);
-- the live member list is also cached in redis hash group_member_<groupId>.
CREATE TABLE IF NOT EXISTS `IMGroupMember` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'user id',
  `status` tinyint(4) unsigned NOT NULL DEFAULT '1' COMMENT '0 member, 1 left',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation (join) time',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_userId_status` (`groupId`,`userId`,`status`),
  KEY `idx_userId_status_updated` (`userId`,`status`,`updated`),
  KEY `idx_groupId_updated` (`groupId`,`updated`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COMMENT='user-group membership';

-- IMGroupMessage_0: group messages, sharded by groupId % 8 (this shard: 0).
-- msgId is the per-group sequence number; type is the protocol MsgType:
-- 0x11 (17) group text, 0x12 (18) group audio (the column default 2 is stale).
-- Used by db_proxy_server GroupMessageModel.
CREATE TABLE IF NOT EXISTS `IMGroupMessage_0` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_1: group messages, shard groupId % 8 = 1 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_1` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_2: group messages, shard groupId % 8 = 2 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_2` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_3: group messages, shard groupId % 8 = 3 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_3` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_4: group messages, shard groupId % 8 = 4 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_4` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_5: group messages, shard groupId % 8 = 5 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_5` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_6: group messages, shard groupId % 8 = 6 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_6` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMGroupMessage_7: group messages, shard groupId % 8 = 7 (see IMGroupMessage_0).
CREATE TABLE IF NOT EXISTS `IMGroupMessage_7` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `groupId` int(11) unsigned NOT NULL COMMENT 'group id',
  `userId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the group',
  `content` varchar(4096) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'message content',
  `type` tinyint(3) unsigned NOT NULL DEFAULT '2' COMMENT 'IM.BaseDefine MsgType (17 text, 18 audio)',
  `status` int(11) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_groupId_status_created` (`groupId`,`status`,`created`),
  KEY `idx_groupId_msgId_status_created` (`groupId`,`msgId`,`status`,`created`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='IM group messages';

-- IMMessage_0: one-to-one messages, sharded by relateId % 8 (this shard: 0),
-- where relateId is the IMRelationShip id of the user pair.
-- msgId is the per-pair sequence number; type is the protocol MsgType: 1 text, 2 audio.
-- Used by db_proxy_server MessageModel.
CREATE TABLE IF NOT EXISTS `IMMessage_0` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_1: one-to-one messages, shard relateId % 8 = 1 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_1` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_2: one-to-one messages, shard relateId % 8 = 2 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_2` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_3: one-to-one messages, shard relateId % 8 = 3 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_3` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_4: one-to-one messages, shard relateId % 8 = 4 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_4` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_5: one-to-one messages, shard relateId % 8 = 5 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_5` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_6: one-to-one messages, shard relateId % 8 = 6 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_6` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMMessage_7: one-to-one messages, shard relateId % 8 = 7 (see IMMessage_0).
CREATE TABLE IF NOT EXISTS `IMMessage_7` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `relateId` int(11) unsigned NOT NULL COMMENT 'IMRelationShip id of the user pair',
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `msgId` int(11) unsigned NOT NULL COMMENT 'message id within the pair',
  `content` varchar(4096) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'message content',
  `type` tinyint(2) unsigned NOT NULL DEFAULT '1' COMMENT 'IM.BaseDefine MsgType (1 text, 2 audio)',
  `status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 normal, 1 deleted',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  PRIMARY KEY (`id`),
  KEY `idx_relateId_status_created` (`relateId`,`status`,`created`),
  KEY `idx_relateId_status_msgId_created` (`relateId`,`status`,`msgId`,`created`),
  KEY `idx_fromId_toId_created` (`fromId`,`toId`,`status`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- IMRecentSession: each user's recent-contact list (one row per user and peer);
-- type 1 = user peer, 2 = group peer; status 0 = shown, 1 = removed.
-- Used by db_proxy_server SessionModel / RecentSession.
CREATE TABLE IF NOT EXISTS `IMRecentSession` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `userId` int(11) unsigned NOT NULL COMMENT 'owner user id',
  `peerId` int(11) unsigned NOT NULL COMMENT 'peer user or group id',
  `type` tinyint(1) unsigned DEFAULT '0' COMMENT '1 user, 2 group',
  `status` tinyint(1) unsigned DEFAULT '0' COMMENT '0 normal, 1 removed',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_userId_peerId_status_updated` (`userId`,`peerId`,`status`,`updated`),
  KEY `idx_userId_peerId_type` (`userId`,`peerId`,`type`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

-- IMRelationShip: one row per pair of users who have chatted (smallId < bigId);
-- its id is the relateId that shards IMMessage_N.
-- Used by db_proxy_server RelationModel.
CREATE TABLE IF NOT EXISTS `IMRelationShip` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `smallId` int(11) unsigned NOT NULL COMMENT 'smaller user id of the pair',
  `bigId` int(11) unsigned NOT NULL COMMENT 'bigger user id of the pair',
  `status` tinyint(1) unsigned DEFAULT '0' COMMENT '0 normal, 1 removed',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_smallId_bigId_status_updated` (`smallId`,`bigId`,`status`,`updated`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;

-- IMUser: user accounts and profiles. password = md5(md5(plain) + salt) in
-- lowercase hex; login requires status = 0.
-- Used by db_proxy_server InterLogin (login) and UserModel (user info, sign
-- info, push shield).
CREATE TABLE IF NOT EXISTS `IMUser` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT COMMENT 'user id',
  `sex` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '1 male, 2 female, 0 unknown',
  `name` varchar(32) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'login name',
  `domain` varchar(32) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'name in pinyin / search key',
  `nick` varchar(32) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'nickname',
  `password` varchar(32) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'md5(md5(plain) + salt), hex',
  `salt` varchar(4) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'password salt',
  `phone` varchar(11) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'mobile phone number',
  `email` varchar(64) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'email',
  `avatar` varchar(255) COLLATE utf8mb4_bin DEFAULT '' COMMENT 'avatar URL',
  `departId` int(11) unsigned NOT NULL COMMENT 'department id',
  `status` tinyint(2) unsigned DEFAULT '0' COMMENT 'account status; 0 can log in, 3 left the company',
  `created` int(11) unsigned NOT NULL COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL COMMENT 'last update time',
  `push_shield_status` tinyint(1) unsigned NOT NULL DEFAULT '0' COMMENT '0 push on, 1 do not disturb',
  `sign_info` varchar(128) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'personal signature',
  PRIMARY KEY (`id`),
  KEY `idx_domain` (`domain`),
  KEY `idx_name` (`name`),
  KEY `idx_phone` (`phone`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
