-- IMTransmitFile: offline files waiting for their receiver. The C++
-- db_proxy_server (business/FileModel.cpp) reads and writes this table but
-- the reference schema (ttopen.sql) does not create it; without it the
-- C++ and our db_proxy_server both answer "no offline files" and drop
-- additions. Load this file next to sql/schema.sql to keep offline files.
-- Columns are the ones FileModel.cpp uses.
CREATE TABLE IF NOT EXISTS `IMTransmitFile` (
  `id` int(11) unsigned NOT NULL AUTO_INCREMENT,
  `fromId` int(11) unsigned NOT NULL COMMENT 'sender user id',
  `toId` int(11) unsigned NOT NULL COMMENT 'receiver user id',
  `fileName` varchar(255) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'file name',
  `size` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'file size in bytes',
  `taskId` varchar(64) COLLATE utf8mb4_bin NOT NULL DEFAULT '' COMMENT 'file_server task id',
  `status` tinyint(2) unsigned NOT NULL DEFAULT '0' COMMENT '0 waiting',
  `created` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'creation time',
  `updated` int(11) unsigned NOT NULL DEFAULT '0' COMMENT 'last update time',
  PRIMARY KEY (`id`),
  KEY `idx_toId_status_created` (`toId`, `status`, `created`),
  KEY `idx_fromId_toId_taskId` (`fromId`, `toId`, `taskId`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='offline files';
