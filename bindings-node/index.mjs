// The ES module entry of license-backup: the very objects of the CommonJS entry (index.js), so
// both module systems share one addon, one set of classes and one `instanceof`.
import lb from './index.js'

export const {
  LicenseStore,
  Protector,
  EmbeddedService,
  RemoteService,
  BackupRestorer,
  createBackupRestorer,
  LicenseBackupError,
  ErrorCode,
  EVENTS,
  setLogger,
} = lb
export default lb
